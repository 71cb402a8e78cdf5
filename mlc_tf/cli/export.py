"""mlc-export: export a trained workdir's model.keras as the next version of saved_models/<name>/.

  mlc-export --workdir=workdirs/demo                   # -> saved_models/demo/<next version>/
  mlc-export --workdir=workdirs/demo --name=demo_small --base_dir=/srv/models

The name and base directory default to the ``export`` group of the run's
config.json; an existing version is never overwritten.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import json
import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.models import inference
from mlc_tf.serving import export

_WORKDIR = flags.DEFINE_string("workdir", None,
                               "A training workdir (holds model.keras and config.json).",
                               required=True)
_NAME = flags.DEFINE_string("name", None,
                            "Model name: saved_models/<name>/. Default: the config's export.name.")
_BASE_DIR = flags.DEFINE_string("base_dir", None,
                                "Where model folders go. Default: the config's export.base_dir.")
_MAX_IMAGE_PIXELS = flags.DEFINE_integer(
    "max_image_pixels", export.MAX_IMAGE_PIXELS,
    "Images whose header announces more pixels get valid=false.", lower_bound=1)


def main(argv):
  del argv
  model_path = os.path.join(_WORKDIR.value, "model.keras")
  if not os.path.isfile(model_path):
    raise SystemExit(f"mlc-export: error: no trained model at {model_path} (run mlc-train first)")
  config_path = os.path.join(_WORKDIR.value, "config.json")
  config_json = "{}"
  if os.path.isfile(config_path):
    with open(config_path) as f:
      config_json = f.read()
  export_config = json.loads(config_json).get("export", {})
  name = _NAME.value or export_config.get("name") or os.path.basename(
      os.path.normpath(_WORKDIR.value))
  base_dir = _BASE_DIR.value or export_config.get("base_dir") or "saved_models"
  path = export.export_saved_model(inference.load(model_path), base_dir=base_dir, name=name,
                                   config_json=config_json,
                                   max_image_pixels=_MAX_IMAGE_PIXELS.value)
  print(f"exported: {path}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
