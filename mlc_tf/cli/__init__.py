"""The absl entry points, one module per console script.

Importing this package sets TensorFlow's environment before any entry point
loads TensorFlow, which reads it once, at start-up: its oneDNN kernels on
where they were measured faster (``hardware.onednn_faster``), and its own
log lines (CUDA probes, graph notes) silenced unless ``--verbosity`` (``-v``)
asks for more. A variable the user set is left alone. Only cli/ reads the
environment. ``STARTED`` is when the command began: a time budget counts
from there.
"""

import logging
import os
import sys
import time

from mlc_tf import hardware


def _verbose(argv: list[str]) -> bool:
  """Whether the command line asks absl for more than its default verbosity (``--verbosity=1``, ``-v 1``)."""
  for i, arg in enumerate(argv):
    name, equals, value = arg.partition("=")
    if name in ("--verbosity", "-v"):
      value = value if equals else (argv[i + 1] if i + 1 < len(argv) else "0")
      try:
        return int(value) > 0
      except ValueError:
        return True  # a level name (debug, info): more than the default
  return False


def _set_tensorflow_environment(environ: dict, argv: list[str], cpu: hardware.CPU) -> None:
  if "TF_ENABLE_ONEDNN_OPTS" not in environ and hardware.onednn_faster(cpu):
    environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
  if "TF_CPP_MIN_LOG_LEVEL" not in environ and not _verbose(argv):
    # 3: TensorFlow's C++ log says nothing; its errors reach the user as Python exceptions with their message.
    environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


STARTED = time.time()
_set_tensorflow_environment(os.environ, sys.argv, hardware.read_cpu())
if not _verbose(sys.argv):
  logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TensorFlow's Python notes (signature input names, ...)
