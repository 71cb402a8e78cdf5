"""What tests share besides fixtures: tiny generated corpora, fast configs, running an entry point.

Imported as ``from helpers import ...`` (pytest puts tests/ on the path); fixtures stay in
conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

from mlc_tf import config as config_lib
from mlc_tf import factory

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLICKR14 = os.environ.get("MLC_FLICKR14_DIR",
                          os.path.join(REPO_ROOT, "..", "shared", "datasets", "flickr14"))
FLICKR14_UNLABELED = os.environ.get(
    "MLC_FLICKR14_UNLABELED_DIR",
    os.path.join(REPO_ROOT, "..", "shared", "datasets", "flickr14-unlabeled"))


def make_tiny_corpus(root, labels=("cat", "dog", "sun"), num_images=24, size=16, seed=0,
                     grayscale_every=5):
  """Writes images/im<ID>.jpg (colour patterns, some grayscale) and annotations/<label>.txt.

  Label k is positive when the image carries a bright square in quadrant k,
  so a CNN can learn it. Returns the {id: set(labels)} it wrote.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "images"), exist_ok=True)
  os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
  truth = {}
  for image_id in range(1, num_images + 1):
    pixels = rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)
    present = {label for label in labels if rng.random() < 0.4}
    half = size // 2
    for k, label in enumerate(labels):
      if label in present:
        y, x = (k // 2) * half, (k % 2) * half
        pixels[y:y + half, x:x + half] = 230
    image = Image.fromarray(pixels)
    if grayscale_every and image_id % grayscale_every == 0:
      image = image.convert("L")
    image.save(os.path.join(root, "images", f"im{image_id}.jpg"), quality=95)
    truth[image_id] = present
  for label in labels:
    with open(os.path.join(root, "annotations", f"{label}.txt"), "w") as f:
      f.writelines(f"{i}\n" for i, present in truth.items() if label in present)
  return truth


def fast_config(image_size=16, epochs=2, model="simple_cnn"):
  """A config that trains in seconds on a tiny corpus: ``model`` narrow and shallow where it has
  those knobs."""
  cfg = config_lib.base_config()
  cfg.data.image_size = image_size
  cfg.data.val_fraction = 0.25
  cfg.data.test_fraction = 0.25
  factory.choose(cfg, "model", "simple_cnn", {"model": model}, width=4, depth=2, dropout=0.3)
  cfg.train.epochs = epochs
  cfg.train.batch_size = 8
  # float32 on every machine: "auto" would train in bfloat16 on a CPU with AMX and in float32 on an
  # AVX2 one, and the suite's figures would differ by machine (tests/test_hardware.py checks what
  # "auto" picks).
  cfg.train.precision = "float32"
  cfg.export.name = "tiny"
  return cfg


def run_cli(module, *args, timeout=600):
  """Runs ``python -m mlc_tf.cli.<module> args`` on this checkout; fails with its stderr; returns
  its stdout.

  A subprocess per command: each CLI defines its own absl flags, which cannot share one process.
  """
  proc = subprocess.run([sys.executable, "-m", f"mlc_tf.cli.{module}", *args], capture_output=True,
                        text=True, cwd=REPO_ROOT, timeout=timeout,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def warmup_requests(version_dir):
  """[(signature, input name, rows)] of an export's TF Serving warm-up file, in order."""
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_log_pb2

  from mlc_tf.serving import export
  requests = []
  path = os.path.join(version_dir, "assets.extra", export.WARMUP_FILE)
  for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
    request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
    (name, tensor), = request.inputs.items()
    requests.append((request.model_spec.signature_name, name, tf.make_ndarray(tensor)))
  return requests
