"""mlc-export: export a trained workdir's model.keras: the next SavedModel version of
saved_models/<name>/, or a LiteRT or ONNX file.

  mlc-export --workdir=workdirs/demo                   # -> saved_models/demo/<next version>/
  mlc-export --workdir=workdirs/demo --name=demo_small --base_dir=/srv/models
  mlc-export --workdir=workdirs/demo --format=litert --precision=int8  # .../demo_int8.tflite
  mlc-export --workdir=workdirs/demo --format=onnx --output_file=demo.onnx

The name and base directory default to the ``export`` group of the run's
config.json; an existing version is never overwritten. Photos of the training
corpus (the folder the workdir's data_audit.json names, or --corpus) go into
the SavedModel's TF Serving warm-up requests and calibrate int8's ranges.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import json
import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.data import corpus
from mlc_tf.models import inference
from mlc_tf.serving import export, portable

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
_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", *portable.FORMATS],
                            "saved_model (TF Serving), litert (a .tflite) or onnx (a .onnx).")
_PRECISION = flags.DEFINE_enum("precision", "float32", portable.PRECISIONS,
                               "litert: float32, float16, dynamic_int8 or int8 (integer-only "
                               "convolutions calibrated on corpus photos, float32 head); onnx: "
                               "float32.")
_OUTPUT_FILE = flags.DEFINE_string(
    "output_file", None, "litert/onnx: the file to write. Default: "
    "<base_dir>/<name>/<name>_<precision>.tflite or <base_dir>/<name>/<name>.onnx.")
_CORPUS = flags.DEFINE_string(
    "corpus", None, "The training corpus folder (images/ inside, or the images themselves) "
    "whose photos warm TF Serving up and calibrate int8. Default: the folder the workdir's "
    "data_audit.json names.")
_REPRESENTATIVE_PHOTOS = flags.DEFINE_integer(
    "representative_photos", 200, "int8: how many corpus photos calibrate the activation ranges.",
    lower_bound=1)


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

  def photos(count):
    if _CORPUS.value:
      return corpus.sample_images(_CORPUS.value, count)
    return corpus.training_photos(_WORKDIR.value, count)

  if _FORMAT.value == "saved_model":
    path = export.export_saved_model(inference.load(model_path), base_dir=base_dir, name=name,
                                     config_json=config_json,
                                     max_image_pixels=_MAX_IMAGE_PIXELS.value,
                                     warmup_photos=photos(export.WARMUP_PHOTOS))
  else:
    suffix = portable.FORMATS[_FORMAT.value]
    stem = f"{name}_{_PRECISION.value}" if _FORMAT.value == "litert" else name
    representative = photos(_REPRESENTATIVE_PHOTOS.value) if _PRECISION.value == "int8" else []
    if _PRECISION.value == "int8" and not representative:
      where = _CORPUS.value or "the corpus folder the workdir's data_audit.json names"
      raise SystemExit("mlc-export: error: --precision=int8 calibrates on photos of the training "
                       f"corpus, and {where} gave none here: give --corpus=<its folder>")
    with common.exit_on_error("mlc-export", ValueError):
      path = portable.export_file(inference.load(model_path),
                                  _OUTPUT_FILE.value or os.path.join(base_dir, name, stem + suffix),
                                  _FORMAT.value, _PRECISION.value, representative, config_json,
                                  _MAX_IMAGE_PIXELS.value)
  print(f"exported: {path}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
