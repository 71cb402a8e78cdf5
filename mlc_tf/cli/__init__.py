"""The absl entry points, one module per console script.

Each entry point that loads TensorFlow calls ``start()`` before its other
imports: TensorFlow reads its environment once, when it loads. ``start()``
turns its oneDNN kernels on where they were measured faster
(``hardware.onednn_faster``) and silences its own log lines (CUDA probes,
graph notes) unless ``--verbosity`` (``-v``) asks for more. A variable the
user set is left alone. Importing this package changes nothing: only a
command that runs does. ``STARTED`` is when the command began: a time budget
counts from there.
"""

import logging
import os
import sys
import time

from mlc_tf import hardware


def _verbose(argv: list[str]) -> bool:
  """Whether the command line asks absl for more than its default verbosity (``--verbosity=1``, ``-v
  1``)."""
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
    # 3: TensorFlow's C++ log says nothing; its errors reach the user as Python exceptions with
    # their message.
    environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


STARTED = time.time()
# Libraries that log their own progress through absl (TensorFlow's SavedModel writer: a 23-name
# "unsupported characters" line per signature) or Python logging (Beam's harness): below a
# warning, shown only with --verbosity.
_LIBRARIES = tuple(f"{os.sep}{name}{os.sep}" for name in ("tensorflow", "keras", "apache_beam"))


class _QuietLibraries(logging.Filter):
  """Drops the info lines of ``_LIBRARIES``; their warnings and errors, and mlc_tf's lines,
  pass."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        library in record.pathname for library in _LIBRARIES)


def start() -> None:
  """Sets TensorFlow's environment and log level for this command, before TensorFlow loads."""
  _set_tensorflow_environment(os.environ, sys.argv, hardware.read_cpu())
  if not _verbose(sys.argv):
    # TensorFlow's Python notes (signature input names, ...)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    logging.getLogger("absl").addFilter(_QuietLibraries())
