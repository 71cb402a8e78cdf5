"""LiteRT and ONNX exports (mlc_tf/serving/portable.py): the SavedModel's answers on decoded pixels,
through mlc-export and mlc-predict, and the files and ops they refuse."""

import csv
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO_ROOT, run_cli
from image_bytes import encode

from mlc_tf.models import inference
from mlc_tf.serving import portable, prediction

FILES = {  # name -> (format, precision)
    "tiny_float32.tflite": ("litert", "float32"),
    "tiny_float16.tflite": ("litert", "float16"),
    "tiny_dynamic_int8.tflite": ("litert", "dynamic_int8"),
    "tiny_int8.tflite": ("litert", "int8"),
    "tiny.onnx": ("onnx", "float32"),
}
# Largest probability difference from the SavedModel each precision keeps to on the tiny model.
TOLERANCE = {"float32": 1e-5, "float16": 2e-3, "dynamic_int8": 0.03, "int8": 0.05}


# mlc-export's own runs (a process start costs seconds): int8 finds its representative photos in the
# workdir's corpus; the others go through the library function it calls.
THROUGH_THE_CLI = ("tiny_int8.tflite", "tiny.onnx")


@pytest.fixture(scope="module")
def exported(tiny_trained, tmp_path_factory):
  """{file name: path}: the tiny workdir exported in every format and precision."""
  _, workdir, result = tiny_trained
  folder = tmp_path_factory.mktemp("portable")
  paths = {}
  for name, (file_format, precision) in FILES.items():
    paths[name] = str(folder / name)
    if name in THROUGH_THE_CLI:
      out = run_cli("export", f"--workdir={workdir}", f"--format={file_format}",
                    f"--precision={precision}", f"--output_file={paths[name]}")
      assert out.strip().splitlines()[-1] == f"exported: {paths[name]}"
    else:
      with open(os.path.join(workdir, "config.json")) as f:
        portable.export_file(result.inference_model, paths[name], file_format, precision,
                             config_json=f.read())
  assert sorted(os.listdir(folder)) == sorted(FILES)  # nothing staged is left
  return paths


def predicted_csv(model, images, out):
  """mlc-predict's CSV of ``images`` (a folder) with ``model``, through the library function the
  CLI calls: [header, rows...]."""
  predictor = prediction.load_predictor(model)
  prediction.predict_to_csv(predictor, prediction.list_images([images]), out, 64, True)
  with open(out, newline="") as f:
    return list(csv.reader(f))


@pytest.fixture(scope="module")
def saved_model_csv(tiny_trained, tiny_saved_model, tmp_path_factory):
  root, _, _ = tiny_trained
  return predicted_csv(tiny_saved_model, f"{root}/images",
                       str(tmp_path_factory.mktemp("csv") / "saved_model.csv"))


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_tags_like_the_saved_model(exported, saved_model_csv, name, tiny_trained,
                                             tmp_path):
  root, _, _ = tiny_trained
  rows, want = predicted_csv(exported[name], f"{root}/images", str(tmp_path / "tags.csv")), \
      saved_model_csv
  assert rows[0] == want[0]  # file, the labels, prob_<label>
  assert [row[0] for row in rows] == [row[0] for row in want]
  labels = (len(want[0]) - 1) // 2
  decisions, want_decisions = (np.array([row[1:1 + labels] for row in table[1:]], int)
                               for table in (rows, want))
  probabilities, want_probabilities = (np.array([row[1 + labels:] for row in table[1:]], float)
                                       for table in (rows, want))
  precision = FILES[name][1]
  np.testing.assert_allclose(probabilities, want_probabilities, atol=TOLERANCE[precision])
  if precision == "float32":
    assert (decisions == want_decisions).all()
  else:  # quantized: a probability within the tolerance of its threshold may flip
    assert (decisions == want_decisions).mean() >= 0.9


@pytest.mark.parametrize("name", THROUGH_THE_CLI)
def test_mlc_predict_on_a_file_writes_the_saved_models_csv(exported, name, tiny_trained,
                                                           tiny_saved_model, tmp_path):
  root, _, _ = tiny_trained
  for model, out in ((exported[name], "file.csv"), (tiny_saved_model, "saved_model.csv")):
    run_cli("predict", f"--model={model}", f"--images={root}/images", f"--output={tmp_path / out}")
  if name == "tiny.onnx":  # float32: the same decisions, the same CSV
    assert (tmp_path / "file.csv").read_text() == (tmp_path / "saved_model.csv").read_text()
  else:
    file_rows, saved_rows = (read_csv(tmp_path / out) for out in ("file.csv", "saved_model.csv"))
    assert file_rows[0] == saved_rows[0] and len(file_rows) == len(saved_rows)


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.reader(f))


def test_each_file_carries_the_labels_thresholds_and_rules(exported, tiny_saved_model):
  with open(os.path.join(tiny_saved_model, "assets.extra", "metadata.json")) as f:
    saved = json.load(f)
  for name, (file_format, precision) in FILES.items():
    runtime = portable.Runtime(exported[name])
    assert {key: runtime.metadata[key] for key in saved} == saved
    assert (runtime.metadata["format"], runtime.metadata["precision"]) == (file_format, precision)
    size = saved["image_size"]
    probabilities, decisions = runtime(np.zeros((3, size, size, 3), np.uint8))
    assert probabilities.shape == decisions.shape == (3, len(saved["label_names"]))
    assert probabilities.dtype == np.float32 and decisions.dtype == np.int32


def test_int8_runs_integer_convolutions_and_a_float_head(exported):
  from ai_edge_litert.interpreter import Interpreter
  interpreter = Interpreter(exported["tiny_int8.tflite"])
  ops = interpreter._get_ops_details()
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  conv = [op for op in ops if op["op_name"] == "CONV_2D"]
  assert conv and all(tensors[op["inputs"][i]]["dtype"] == np.int8  # activations and weights
                      for op in conv for i in (0, 1))
  # From the pooled features on ([B, n] tensors: the Dense head, its sigmoid, the thresholds and
  # rules) nothing is int8: an int8 sigmoid answers multiples of 1/256, thresholds sit among them.
  head = [op for op in ops if all(len(tensors[i]["shape"]) <= 2 for i in op["outputs"])]
  assert any(op["op_name"] == "LOGISTIC" for op in head)
  assert not [op["op_name"] for op in head
              if any(tensors[i]["dtype"] == np.int8 for i in [*op["inputs"], *op["outputs"]]
                     if i >= 0)]


def test_files_that_are_not_ours_are_refused_with_the_reason(tiny_trained, tmp_path):
  root, _, _ = tiny_trained
  pixels = keras.Input((16, 16, 3), name="pixels")
  foreign = keras.Model(pixels, {"probabilities": keras.layers.GlobalAveragePooling2D()(pixels)})
  foreign(np.zeros((1, 16, 16, 3), np.float32))
  foreign.export(str(tmp_path / "foreign.tflite"), format="litert", verbose=False)
  foreign.export(str(tmp_path / "foreign.onnx"), format="onnx", verbose=False)
  (tmp_path / "junk.tflite").write_bytes(b"not a flatbuffer at all")
  (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk")
  for name, error, reason in (
      ("foreign.onnx", ValueError, "carries no 'mlc_tf' metadata"),
      ("junk.tflite", ValueError, "is not a LiteRT (TF Lite) flatbuffer"),
      ("junk.onnx", ValueError, "is not an ONNX model"),
      ("absent.onnx", FileNotFoundError, "no model file")):
    with pytest.raises(error, match=re.escape(reason)):
      prediction.load_predictor(str(tmp_path / name))
  # the user's path: mlc-predict says why, and writes nothing
  proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.predict",
                         f"--model={tmp_path / 'foreign.tflite'}", f"--images={root}/images",
                         f"--output={tmp_path / 'tags.csv'}"], capture_output=True, text=True,
                        cwd=REPO_ROOT, timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert (f"mlc-predict: error: {tmp_path / 'foreign.tflite'} carries no 'mlc_tf' metadata"
          in proc.stderr)
  assert not (tmp_path / "tags.csv").exists()


@keras.saving.register_keras_serializable(package="test_portable_export")
class BesselLayer(keras.layers.Layer):
  """An op neither LiteRT's builtins nor tf2onnx have: tf.math.bessel_i1e."""

  def call(self, x):
    return tf.math.bessel_i1e(x)


@pytest.mark.parametrize("file_format, precision",
                         [("litert", "float32"), ("litert", "int8"), ("onnx", "float32")])
def test_an_op_the_runtime_lacks_fails_the_export_by_name_leaving_nothing(tiny_trained, tmp_path,
                                                                          file_format, precision):
  _, _, result = tiny_trained
  image = keras.Input(result.inference_model.input_shape[1:], name="image")
  odd = inference.build(keras.Model(image, result.model(BesselLayer()(image))),
                        result.label_names, result.thresholds)
  path = str(tmp_path / f"odd{portable.FORMATS[file_format]}")
  photos = [encode(np.full((8, 8, 3), 100, np.uint8), "PNG")]  # int8 calibrates on them
  with pytest.raises(portable.UnsupportedOps, match="BesselI1e.*nothing was written"):
    portable.export_file(odd, path, file_format, precision, photos)
  assert os.listdir(tmp_path) == []


def test_export_file_refuses_bad_requests_before_converting(tiny_trained, tmp_path):
  _, _, result = tiny_trained
  model = result.inference_model
  for args, message in ((("m.tflite", "onnx"), "ends with .onnx"),
                        (("m.tflite", "coreml"), "unknown format"),
                        (("m.onnx", "onnx", "int8"), "not one onnx exports"),
                        (("m.tflite", "litert", "int8"), "int8 needs representative photos")):
    with pytest.raises(ValueError, match=message):
      portable.export_file(model, str(tmp_path / args[0]), *args[1:])
  assert os.listdir(tmp_path) == []


def test_load_predictor_picks_the_runtime_by_suffix(exported):
  predictor = prediction.load_predictor(exported["tiny.onnx"])
  assert isinstance(predictor, prediction.PortablePredictor)
  assert predictor.label_names == portable.Runtime(exported["tiny_float32.tflite"]).label_names


@pytest.mark.parametrize("file_name", ["gated.onnx", "gated.tflite"])
def test_a_model_adapted_to_a_stream_exports_with_its_gate(tiny_trained, tmp_path, file_name):
  """A stream-adapted model (prior shift, then TaggedGate, as mlc-train with data.unlabeled and
  mlc-calibrate --prevalence=estimate write it) converts and answers as Keras does."""
  _, _, result = tiny_trained
  model = result.inference_model
  names = list(inference.decision_layer(model).label_names)
  prior = np.full(len(names), 0.3)
  gated = inference.build(
      inference.network(model), names, np.full(len(names), 0.2), priors=(prior, prior / 2),
      gate={"coefficients": np.linspace(-0.5, 0.5, len(names)), "bias": 0.3,
            "label_frequency": 0.6, "no_label_share": 0.4})
  path = portable.export_file(gated, str(tmp_path / file_name),
                              "onnx" if file_name.endswith(".onnx") else "litert")
  size = int(gated.inputs[0].shape[1])
  pixels = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
  probabilities, decisions = portable.Runtime(path)(pixels)
  want = gated.predict_on_batch(pixels.astype(np.float32))
  np.testing.assert_allclose(probabilities, want["probabilities"], atol=1e-5)
  assert (decisions == want["decisions"]).all()


@pytest.mark.parametrize("file_name", ["flip.onnx", "flip.tflite"])
def test_a_flip_averaged_model_converts_and_answers_as_keras(tiny_trained, tmp_path, file_name):
  """best.py serves the mean over the image and its mirror (model.flip_average): the mirror layer
  converts to both runtimes, and a file answers as Keras does on images whose mirror changes the
  answer."""
  _, _, result = tiny_trained
  model = result.inference_model
  names = list(inference.decision_layer(model).label_names)
  averaged = inference.build(inference.with_flip_average(inference.network(model)), names,
                             np.full(len(names), 0.5))
  path = portable.export_file(averaged, str(tmp_path / file_name),
                              "onnx" if file_name.endswith(".onnx") else "litert")
  size = int(averaged.inputs[0].shape[1])
  pixels = np.random.default_rng(1).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
  probabilities, decisions = portable.Runtime(path)(pixels)
  want = averaged.predict_on_batch(pixels.astype(np.float32))
  unmirrored = inference.network(model).predict_on_batch(pixels.astype(np.float32))
  assert np.abs(want["probabilities"] - unmirrored).max() > 1e-4  # a file without the mirror fails
  np.testing.assert_allclose(probabilities, want["probabilities"], atol=1e-5)
  assert (decisions == want["decisions"]).all()
