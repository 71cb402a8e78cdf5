"""Shared fixtures: tiny generated corpora, the real corpus when present, fast configs."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mlc_tf import config as config_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLICKR14 = os.environ.get("MLC_FLICKR14_DIR",
                          os.path.join(REPO_ROOT, "..", "shared", "datasets", "flickr14"))


def make_tiny_corpus(root, labels=("cat", "dog", "sun"), num_images=24, size=16, seed=0, grayscale_every=5):
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


@pytest.fixture
def tiny_corpus(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root)
  return root, truth


@pytest.fixture
def flickr14_dir():
  """The real corpus; skipped where absent, except under CI, which has it."""
  if os.path.isdir(os.path.join(FLICKR14, "images")):
    return FLICKR14
  message = f"real corpus not found at {os.path.normpath(FLICKR14)} (set MLC_FLICKR14_DIR to point at it)"
  if os.environ.get("CI"):
    pytest.fail(f"CI has the real corpus, but: {message}")
  pytest.skip(message)


def fast_config(image_size=16, epochs=2, model="simple_cnn"):
  """A config that trains in seconds on a tiny corpus: ``model`` narrow and shallow where it has those knobs."""
  cfg = config_lib.base_config()
  cfg.data.image_size = image_size
  cfg.data.val_fraction = 0.25
  cfg.data.test_fraction = 0.25
  config_lib.choose(cfg, "model", "simple_cnn", {"model": model}, width=4, depth=2, dropout=0.3)
  cfg.train.epochs = epochs
  cfg.train.batch_size = 8
  cfg.export.name = "tiny"
  return cfg


def run_cli(module, *args, timeout=600):
  """Runs ``python -m mlc_tf.cli.<module> args`` on this checkout; fails with its stderr; returns its stdout.

  A subprocess per command: each CLI defines its own absl flags, which cannot share one process.
  """
  proc = subprocess.run([sys.executable, "-m", f"mlc_tf.cli.{module}", *args], capture_output=True, text=True,
                        cwd=REPO_ROOT, timeout=timeout,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
  """A tiny model trained once per test session: (corpus root, workdir, training.TrainResult)."""
  from mlc_tf.train import training
  root = str(tmp_path_factory.mktemp("tiny_trained_corpus"))
  make_tiny_corpus(root, num_images=40)
  workdir = str(tmp_path_factory.mktemp("tiny_trained_workdir"))
  return root, workdir, training.train(fast_config(), root, workdir)


@pytest.fixture(scope="session")
def tiny_saved_model(tiny_trained, tmp_path_factory):
  """``tiny_trained`` exported once: the path of saved_models/tiny/1."""
  from mlc_tf.serving import export
  _, workdir, result = tiny_trained
  base_dir = str(tmp_path_factory.mktemp("tiny_saved_models"))
  with open(os.path.join(workdir, "config.json")) as f:
    return export.export_saved_model(result.inference_model, base_dir=base_dir, name="tiny", config_json=f.read())
