"""Shared fixtures: tiny generated corpora, the real corpus when present, a tiny trained and exported model."""

from __future__ import annotations

import os

import pytest
from helpers import FLICKR14, fast_config, make_tiny_corpus


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
