"""mlc-client: send images to a TF Serving endpoint and print the labels it decides for each.

  mlc-client --rest=http://localhost:8501 --model=demo photo1.jpg photo2.png
  mlc-client --grpc=localhost:8500 --model=demo --json photos/

Prints ``<path><TAB><label>,<label>...`` per image (most probable first), or
one JSON object per line with ``--json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.serving import client

_REST = flags.DEFINE_string("rest", None, "TF Serving REST endpoint, e.g. http://localhost:8501.")
_GRPC = flags.DEFINE_string("grpc", None, "TF Serving gRPC endpoint, e.g. localhost:8500.")
_MODEL = flags.DEFINE_string("model", None, "Model name (the models.config name / MODEL_NAME).",
                             required=True)
_VERSION = flags.DEFINE_integer("version", None,
                                "Model version. Default: the server's choice (the latest).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images per request.", lower_bound=1)
_TIMEOUT_S = flags.DEFINE_float("timeout_s", 30.0, "Seconds to wait for each request.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object per image instead of a table.")
flags.register_multi_flags_validator(
    ["rest", "grpc"], lambda values: (values["rest"] is None) != (values["grpc"] is None),
    message="give exactly one of --rest and --grpc")


def image_paths(args: list[str]) -> list[str]:
  """Lists the files to send: files as given; a directory stands for the files in it, sorted."""
  paths = []
  for arg in args:
    if os.path.isdir(arg):
      paths.extend(sorted(os.path.join(arg, name) for name in os.listdir(arg)
                          if os.path.isfile(os.path.join(arg, name))))
    elif os.path.isfile(arg):
      paths.append(arg)
    else:
      raise SystemExit(f"mlc-client: error: no such file or directory: {arg}")
  return paths


def main(argv):
  paths = image_paths(argv[1:])
  if not paths:
    raise SystemExit("mlc-client: error: give image files or directories to send")
  invalid = 0
  for start in range(0, len(paths), _BATCH_SIZE.value):
    batch = paths[start:start + _BATCH_SIZE.value]
    images = [_read(path) for path in batch]
    # OSError: unreachable server, timeouts
    with common.exit_on_error("mlc-client", client.ServingError, OSError):
      if _REST.value:
        answers = client.predict_rest(_REST.value, _MODEL.value, images, version=_VERSION.value,
                                      timeout_s=_TIMEOUT_S.value)
      else:
        answers = client.predict_grpc(_GRPC.value, _MODEL.value, images, version=_VERSION.value,
                                      timeout_s=_TIMEOUT_S.value)
    for path, answer in zip(batch, answers):
      invalid += not answer.valid
      if _JSON.value:
        print(json.dumps({"path": path, **dataclasses.asdict(answer)}))
      elif answer.valid:
        print(f"{path}\t{','.join(answer.labels)}")
      else:
        print(f"{path}\tINVALID (not a decodable JPEG/PNG/GIF/BMP)")
  print(f"{len(paths)} images, {invalid} invalid", file=sys.stderr)


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def run():
  common.run(main, logging.WARNING)


if __name__ == "__main__":
  run()
