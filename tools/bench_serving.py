"""Serving speed: the exported SavedModel's signatures against keras.Model.predict, in one run.

  # after mlc-train (configs/demo.py)
  PYTHONPATH=. python tools/bench_serving.py --workdir=workdirs/demo

Exports ``<workdir>/model.keras`` to a temporary folder, loads it back with
``tf.saved_model.load`` and measures, on the same images:

* latency for one JPEG: ``serving_default`` (bytes in: decode + resize +
  model + labels) vs ``keras.Model.predict`` and ``predict_on_batch`` on the
  already decoded image;
* throughput at batch 64: the same, plus ``predict_pixels`` on the decoded batch.

Ratios are against ``keras.Model.predict`` (which builds a tf.data pipeline
on every call) and ``predict_on_batch`` (which does not), measured in the
same run, so they hold on a busy machine better than the absolute times do.
About three minutes for the demo model on 2 busy CPU cores.

The cost of an ensemble (``mlc-ensemble``) against one of its members:

  PYTHONPATH=. python tools/bench_serving.py --workdir=workdirs/ensemble --baseline=workdirs/seed0

also exports ``--baseline``'s model and times its ``serving_default`` in the
same run, and prints both exports' latency and throughput with their ratio.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from mlc_tf.data import builtin, corpus, pipeline
from mlc_tf.models import inference
from mlc_tf.serving import export

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Training workdir holding model.keras.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Corpus to take images from. Default: the built-in demo corpus.")
_LATENCY_CALLS = flags.DEFINE_integer("latency_calls", 300,
                                      "Single-image calls per latency measurement.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64,
                                   "Images per call in the throughput measurement.")
_BATCH_CALLS = flags.DEFINE_integer("batch_calls", 30, "Batches per throughput measurement.")
_BASELINE = flags.DEFINE_string(
    "baseline", None, "Another workdir (e.g. one member of the ensemble in --workdir): "
    "its export is timed too, and --workdir's cost printed relative to it.")


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


def main(argv):
  del argv
  print(f"CPU cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
  model = inference.load(_WORKDIR.value)
  data_dir = _DATA_DIR.value or builtin.ensure_demo_corpus()
  frame, _ = corpus.load_corpus(data_dir)
  paths = frame[corpus.PATH_COLUMN].tolist()[:_BATCH_SIZE.value]
  if len(paths) < _BATCH_SIZE.value:
    raise SystemExit(
        f"bench_serving: error: {data_dir} has {len(paths)} images; need {_BATCH_SIZE.value}")
  encoded = [open(path, "rb").read() for path in paths]
  image_size = int(model.input_shape[1])
  decoded = tf.stack([pipeline.decode_and_resize(data, image_size) for data in encoded]).numpy()

  with tempfile.TemporaryDirectory() as base_dir:
    served = tf.saved_model.load(export.export_saved_model(model, base_dir=base_dir, name="bench"))
    serve, pixels = served.signatures["serving_default"], served.signatures["predict_pixels"]
    one_jpeg, one_decoded = tf.constant(encoded[:1]), decoded[:1]
    batch_bytes, batch_pixels = tf.constant(encoded), tf.constant(decoded)
    np.testing.assert_allclose(serve(image_bytes=batch_bytes)["probabilities"].numpy(),
                               model.predict(decoded, verbose=0)["probabilities"], atol=1e-5)

    latency = {
        "serving_default (JPEG bytes)":
            timed_calls(lambda: serve(image_bytes=one_jpeg), _LATENCY_CALLS.value),
        "keras.Model.predict (decoded)":
            timed_calls(lambda: model.predict(one_decoded, verbose=0), _LATENCY_CALLS.value),
        "keras.Model.predict_on_batch (decoded)":
            timed_calls(lambda: model.predict_on_batch(one_decoded), _LATENCY_CALLS.value),
    }
    batch = {
        "serving_default (JPEG bytes)":
            timed_calls(lambda: serve(image_bytes=batch_bytes), _BATCH_CALLS.value),
        "predict_pixels (decoded)":
            timed_calls(lambda: pixels(pixels=batch_pixels), _BATCH_CALLS.value),
        "keras.Model.predict (decoded)":
            timed_calls(lambda: model.predict(decoded, verbose=0), _BATCH_CALLS.value),
        "keras.Model.predict_on_batch (decoded)":
            timed_calls(lambda: model.predict_on_batch(decoded), _BATCH_CALLS.value),
    }
    if _BASELINE.value:
      baseline = tf.saved_model.load(
          export.export_saved_model(inference.load(_BASELINE.value),
                                    base_dir=base_dir,
                                    name="baseline"))
      serve_baseline = baseline.signatures["serving_default"]
      # Timed again, each right after the other: the ratio then holds when the machine's load
      # changes.
      against = [timed_calls(lambda: serve(image_bytes=one_jpeg), _LATENCY_CALLS.value),
                 timed_calls(lambda: serve_baseline(image_bytes=one_jpeg), _LATENCY_CALLS.value),
                 timed_calls(lambda: serve(image_bytes=batch_bytes), _BATCH_CALLS.value),
                 timed_calls(lambda: serve_baseline(image_bytes=batch_bytes), _BATCH_CALLS.value)]

  reference, on_batch = "keras.Model.predict (decoded)", "keras.Model.predict_on_batch (decoded)"
  print(
      f"\nmodel: {model.name}, input {image_size}x{image_size}, "
      f"{len(inference.decision_layer(model).label_names)} "
      f"labels; images from {data_dir}")
  print(
      f"\nlatency, one JPEG ({_LATENCY_CALLS.value} calls)          p50 ms   p99 ms   speed-up at "
      "p50 vs "
      "predict / predict_on_batch")
  p50 = {name: np.percentile(seconds, 50) for name, seconds in latency.items()}
  for name, seconds in latency.items():
    print(f"  {name:42s} {p50[name] * 1000:7.2f}  {np.percentile(seconds, 99) * 1000:7.2f}   "
          f"{p50[reference] / p50[name]:6.2f}x / {p50[on_batch] / p50[name]:5.2f}x")
  print(
      f"\nthroughput, batch {_BATCH_SIZE.value} ({_BATCH_CALLS.value} calls)        images/s   "
      "ratio vs "
      "predict / predict_on_batch")
  rates = {name: _BATCH_SIZE.value / np.median(seconds) for name, seconds in batch.items()}
  for name, rate in rates.items():
    print(
        f"  {name:42s} {rate:8.0f}   {rate / rates[reference]:6.2f}x / "
        f"{rate / rates[on_batch]:5.2f}x")
  if _BASELINE.value:
    _print_against_baseline(*against)
  print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


def _print_against_baseline(latency: np.ndarray, baseline_latency: np.ndarray, batch: np.ndarray,
                            baseline_batch: np.ndarray) -> None:
  """serving_default of --workdir and of --baseline: p50 latency of one JPEG, images/s at the batch
  size, ratios."""
  p50 = np.percentile(latency, 50), np.percentile(baseline_latency, 50)
  rates = _BATCH_SIZE.value / np.median(batch), _BATCH_SIZE.value / np.median(baseline_batch)
  print(f"\nserving_default, --workdir={_WORKDIR.value} against --baseline={_BASELINE.value}")
  print(f"  {'':26s} p50 ms, one JPEG   images/s, batch {_BATCH_SIZE.value}")
  print(f"  {'--workdir':26s} {p50[0] * 1000:16.2f}   {rates[0]:18.0f}")
  print(f"  {'--baseline':26s} {p50[1] * 1000:16.2f}   {rates[1]:18.0f}")
  print(
      f"  {'ratio, workdir / baseline':26s} {p50[0] / p50[1]:15.2f}x   {rates[0] / rates[1]:17.2f}x"
  )


if __name__ == "__main__":
  app.run(main)
