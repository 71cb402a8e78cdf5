"""LiteRT and ONNX exports against the SavedModel, on a workdir's test split: agreement and cost.

  PYTHONPATH=. python tools/bench_formats.py --workdir=workdirs/best_protocol \
      --data_dir=../shared/datasets/flickr14 --saved_model=saved_models/best/1

Rebuilds the run's split from its config.json (``split_corpus.load_and_split``, as mlc-train and
tools/export_split.py do), exports ``<workdir>/model.keras`` in each format of ``--formats``
(``mlc_tf.serving.portable``; int8 calibrated on ``--representative_photos`` photos of the training
split) and asks every one about the test split's photos, decoded once by ``decode_and_resize``.
The SavedModel (``--saved_model``, else exported here) answers through ``serving_default`` on the
photos' bytes, as TF Serving would. Per format:

* agreement: the share of (photo, label) decisions identical to the SavedModel's, and the micro-F1
  and mAP against the test annotations, with their difference from the SavedModel's;
* size: the file, against the SavedModel's folder (saved_model.pb + variables/);
* speed, decoding left out for all: p50 latency of one photo and images/s at ``--batch_size``,
  each against the SavedModel's ``predict_pixels`` on the same pixels, timed back to back in the
  same run, so the ratios hold on a busy machine better than the absolute times.

Prints a markdown table; ``--output`` also writes the figures as JSON.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from mlc_tf import factory  # noqa: E402
from mlc_tf.data import corpus, split_corpus  # noqa: E402
from mlc_tf.evaluate import metrics  # noqa: E402
from mlc_tf.models import inference  # noqa: E402
from mlc_tf.serving import export, portable, signatures  # noqa: E402

VARIANTS = {  # name -> (format, precision)
    "litert_float32": ("litert", "float32"),
    "litert_float16": ("litert", "float16"),
    "litert_dynamic_int8": ("litert", "dynamic_int8"),
    "litert_int8": ("litert", "int8"),
    "onnx": ("onnx", "float32"),
}

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (model.keras, config.json).",
                               required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "The run's corpus.", required=True)
_SAVED_MODEL = flags.DEFINE_string(
    "saved_model", None, "The SavedModel version to compare with. Default: exported here.")
_FORMATS = flags.DEFINE_list("formats", list(VARIANTS), "Which of " + ", ".join(VARIANTS) + ".")
_REPRESENTATIVE_PHOTOS = flags.DEFINE_integer("representative_photos", 200,
                                              "int8: training photos calibrating its ranges.")
_LATENCY_CALLS = flags.DEFINE_integer("latency_calls", 200, "One-photo calls per measurement.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Photos per call in the throughput one.")
_BATCH_CALLS = flags.DEFINE_integer("batch_calls", 20, "Batches per throughput measurement.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures here, as JSON.")


def timed_calls(fn, calls: int, warmup: int = 5) -> np.ndarray:
  """Seconds taken by each of ``calls`` calls of ``fn``, after ``warmup`` untimed ones."""
  for _ in range(warmup):
    fn()
  seconds = []
  for _ in range(calls):
    start = time.perf_counter()
    fn()
    seconds.append(time.perf_counter() - start)
  return np.asarray(seconds)


def in_batches(fn, pixels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(probabilities, decisions) of ``fn`` over ``pixels``, ``size`` at a time."""
  answers = [fn(pixels[start:start + size]) for start in range(0, len(pixels), size)]
  return tuple(np.concatenate(part) for part in zip(*answers))


def folder_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(folder, name))
             for folder, _, names in os.walk(path) for name in names)


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      fields = {key.strip(): value.strip() for key, value in (
          line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)}
    return (f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']}, "
            f"flags {'avx512f' if 'avx512f' in fields.get('flags', '') else 'no avx512f'}), "
            f"{os.cpu_count()} cores")
  except (OSError, KeyError):
    return platform.processor() or "unknown"


def main(argv):
  del argv
  unknown = sorted(set(_FORMATS.value) - set(VARIANTS))
  if unknown:
    raise app.UsageError(f"unknown --formats {unknown}; known: {', '.join(VARIANTS)}")
  cfg = factory.load_run_config(os.path.join(_WORKDIR.value, "config.json"))
  data = split_corpus.load_and_split(_DATA_DIR.value, cfg)
  if data.test.empty:
    raise SystemExit("bench_formats: error: the run has no test split (a final fit)")
  model = inference.load(_WORKDIR.value)
  names, size = data.label_names, int(model.input_shape[1])
  paths = data.test[corpus.PATH_COLUMN].tolist()
  truth = data.test[names].to_numpy()
  encoded = []
  for path in paths:
    with open(path, "rb") as f:
      encoded.append(f.read())
  pixels = portable.decoded_pixels(encoded, size)
  train_paths = data.train[corpus.PATH_COLUMN].to_numpy()
  chosen = np.random.default_rng(0).permutation(len(train_paths))[:_REPRESENTATIVE_PHOTOS.value]
  representative = []
  for path in train_paths[chosen]:
    with open(path, "rb") as f:
      representative.append(f.read())
  print(f"CPU: {cpu_name()}; load average at start {os.getloadavg()[0]:.1f}")
  print(f"{len(paths)} test photos, {len(names)} labels, {size} px; "
        f"int8 calibrated on {len(representative)} training photos")

  with tempfile.TemporaryDirectory() as scratch:
    saved_model_dir = _SAVED_MODEL.value or export.export_saved_model(
        model, base_dir=scratch, name="bench", config_json=cfg.to_json_best_effort())
    loaded = tf.saved_model.load(saved_model_dir)
    serve, serve_pixels = (loaded.signatures[signatures.SERVING],
                           loaded.signatures[signatures.PIXELS])
    reference = {"probabilities": [], "decisions": []}
    for start in range(0, len(encoded), _BATCH_SIZE.value):
      out = serve(image_bytes=tf.constant(encoded[start:start + _BATCH_SIZE.value]))
      for key in reference:
        reference[key].append(out[key].numpy())
    reference = {key: np.concatenate(value) for key, value in reference.items()}

    def saved_model_call(batch):
      out = serve_pixels(pixels=tf.constant(batch, tf.float32))
      return out["probabilities"].numpy(), out["decisions"].numpy()

    def scores(probabilities, decisions):
      return (metrics.micro_macro_f1(truth, decisions)[0],
              metrics.average_precision(truth, probabilities, names)["map"])

    base_f1, base_map = scores(reference["probabilities"], reference["decisions"])
    one, batch = pixels[:1], pixels[:_BATCH_SIZE.value]
    rows = [{"format": "SavedModel (serving_default on bytes)", "identical": 1.0,
             "micro_f1": base_f1, "map": base_map, "bytes": folder_bytes(saved_model_dir)}]
    for variant in _FORMATS.value:
      file_format, precision = VARIANTS[variant]
      path = os.path.join(scratch, variant + portable.FORMATS[file_format])
      started = time.perf_counter()
      try:
        portable.export_file(model, path, file_format, precision, representative)
      except portable.UnsupportedOps as error:  # a row saying why, and the other formats go on
        rows.append({"format": variant, "error": str(error)})
        continue
      export_s = time.perf_counter() - started
      runtime = portable.Runtime(path)
      probabilities, decisions = in_batches(runtime, pixels, _BATCH_SIZE.value)
      micro_f1, mean_ap = scores(probabilities, decisions)
      # back to back with the SavedModel, so each ratio compares the same moment of the machine
      latency = [np.percentile(timed_calls(lambda fn=fn: fn(one), _LATENCY_CALLS.value), 50)
                 for fn in (runtime, saved_model_call)]
      rate = [len(batch) / np.median(timed_calls(lambda fn=fn: fn(batch), _BATCH_CALLS.value))
              for fn in (runtime, saved_model_call)]
      rows.append({
          "format": variant, "identical": float((decisions == reference["decisions"]).mean()),
          "micro_f1": micro_f1, "map": mean_ap, "bytes": os.path.getsize(path),
          "max_probability_difference":
              float(np.abs(probabilities - reference["probabilities"]).max()),
          "latency_ms": latency[0] * 1000, "saved_model_latency_ms": latency[1] * 1000,
          "images_per_s": rate[0], "saved_model_images_per_s": rate[1], "export_s": export_s})

  print(f"\n| format | identical decisions | micro-F1 (diff) | mAP (diff) | size MB (x SavedModel) "
        f"| 1 photo p50 ms (x SavedModel) | batch {_BATCH_SIZE.value} photos/s (x SavedModel) |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  base = rows[0]
  for row in rows:
    if "error" in row:
      print(f"| {row['format']} | not exported: {row['error']} |||||")
      continue
    speed = ("" if "latency_ms" not in row else
             f"{row['latency_ms']:.2f} "
             f"({row['latency_ms'] / row['saved_model_latency_ms']:.2f}x) | "
             f"{row['images_per_s']:.0f} "
             f"({row['images_per_s'] / row['saved_model_images_per_s']:.2f}x)")
    print(f"| {row['format']} | {row['identical'] * 100:.2f} % | {row['micro_f1']:.4f} "
          f"({row['micro_f1'] - base['micro_f1']:+.4f}) | {row['map']:.4f} "
          f"({row['map'] - base['map']:+.4f}) | {row['bytes'] / 1e6:.2f} "
          f"({row['bytes'] / base['bytes']:.2f}x) | {speed or '- | -'} |")
  print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump({"cpu": cpu_name(), "test_photos": len(paths), "rows": rows}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
