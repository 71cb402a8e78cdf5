"""Shared fixtures: tiny generated corpora, the real corpus when present, a tiny trained and
exported model."""

from __future__ import annotations

import os

import pytest
from helpers import FLICKR14, FLICKR14_UNLABELED, fast_config, make_tiny_corpus


@pytest.fixture
def tiny_corpus(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root)
  return root, truth


def _shared_dataset(path: str, env_var: str, what: str) -> str:
  """``path`` when it holds images/; else a skip naming ``env_var``, except under CI, which has the
  shared data."""
  if os.path.isdir(os.path.join(path, "images")):
    return path
  message = f"{what} not found at {os.path.normpath(path)} (set {env_var} to point at it)"
  if os.environ.get("CI"):
    pytest.fail(f"CI has the {what}, but: {message}")
  pytest.skip(message)


@pytest.fixture
def flickr14_dir():
  """The real corpus; skipped where absent, except under CI, which has it."""
  return _shared_dataset(FLICKR14, "MLC_FLICKR14_DIR", "real corpus")


@pytest.fixture
def flickr14_unlabeled_dir():
  """The real corpus's 5,000 untagged photos; skipped where absent, except under CI, which has
  them."""
  return _shared_dataset(FLICKR14_UNLABELED, "MLC_FLICKR14_UNLABELED_DIR",
                         "folder of untagged photos")


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
  """``tiny_trained`` exported once, warm-up requests made of its corpus' photos: the path of
  saved_models/tiny/1."""
  from mlc_tf.data import corpus
  from mlc_tf.serving import export
  _, workdir, result = tiny_trained
  base_dir = str(tmp_path_factory.mktemp("tiny_saved_models"))
  with open(os.path.join(workdir, "config.json")) as f:
    return export.export_saved_model(
        result.inference_model, base_dir=base_dir, name="tiny", config_json=f.read(),
        warmup_photos=corpus.training_photos(workdir, export.WARMUP_PHOTOS))
