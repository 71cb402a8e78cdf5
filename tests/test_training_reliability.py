"""Issue 7's training rows: a NaN loss stops cleanly and loses nothing, runs are reproducible, and
saved models are Lambda-free and load with safe_mode=True."""

import hashlib
import json
import logging
import os
import zipfile

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import fast_config, make_tiny_corpus
from tensorflow.python.framework import config as tf_config

from mlc_tf import models, registry
from mlc_tf.models import inference
from mlc_tf.train import callbacks, losses, optimizers, training


def _digest(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


BAD_FILES = {"im90.jpg": b"", "im91.jpg": b"<html>not found</html>",
             "im92.jpg": b"\xff\xd8\xff\xe0" + b"\0" * 40}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  """A tiny learnable corpus plus three files no decoder can read, one of them labelled."""
  root = str(tmp_path_factory.mktemp("corpus"))
  make_tiny_corpus(root, num_images=32)
  for name, content in BAD_FILES.items():
    with open(os.path.join(root, "images", name), "wb") as f:
      f.write(content)
  with open(os.path.join(root, "annotations", "cat.txt"), "a") as f:
    f.write("90\n")
  return root


@pytest.fixture(scope="module")
def first_run(corpus_dir, tmp_path_factory):
  """One finished epoch in a fresh workdir, with the warnings training logged."""
  workdir = str(tmp_path_factory.mktemp("run"))
  records = []
  handler = logging.Handler(logging.WARNING)
  handler.emit = records.append
  logging.getLogger().addHandler(handler)
  try:
    result = training.train(fast_config(epochs=1), corpus_dir, workdir)
  finally:
    logging.getLogger().removeHandler(handler)
  return workdir, result, [record.getMessage() for record in records]


def test_training_skips_bad_files_up_front_and_reports_them(first_run):
  workdir, result, warnings = first_run
  audit = json.load(open(os.path.join(workdir, "data_audit.json")))
  assert sorted(os.path.basename(path)
                for path, _ in audit["undecodable_images"]) == sorted(BAD_FILES)
  assert audit["num_samples"] == 32 and audit["num_images"] == 32 + len(BAD_FILES)
  # the epoch ran to its end
  assert len(result.history["loss"]) == 1 and np.isfinite(result.history["loss"][0])
  assert any("3 image(s) cannot be decoded and were skipped (im90.jpg: empty file" in w
             for w in warnings), warnings


def _epoch_checkpoints(workdir):
  """The last-epoch weight files (the best-epoch model saved beside them is another callback's)."""
  return sorted(n for n in os.listdir(os.path.join(workdir,
                                                   "checkpoints")) if n.startswith("epoch_"))


def test_nan_loss_stops_keeps_the_last_good_checkpoint_and_resume_works(corpus_dir, first_run,
                                                                       monkeypatch):
  workdir, _, _ = first_run
  good = os.path.join(workdir, "checkpoints", "epoch_001.weights.h5")
  kept = {name: _digest(os.path.join(workdir, name)) for name in ("model.keras", "report.json")}
  good_digest = _digest(good)

  diverging = fast_config(epochs=3)
  diverging.train.resume_from = good
  # a NaN rate (refused as a config value) the first update poisons every weight with
  monkeypatch.setattr(optimizers, "make_schedule", lambda *args: float("nan"))
  # so a backup of poisoned weights exists when the loss shows it
  diverging.train.backup_every_steps = 1
  with pytest.raises(callbacks.TrainingDiverged,
                     match=r"loss became nan at epoch 2, batch \d+.*"
                           r"last good checkpoint is .*epoch_001\.weights\.h5"):
    training.train(diverging, corpus_dir, workdir)
  assert _epoch_checkpoints(workdir) == ["epoch_001.weights.h5"]
  assert _digest(good) == good_digest  # the diverged weights never reached a checkpoint
  # nor the finished run's model
  assert {name: _digest(os.path.join(workdir, name)) for name in kept} == kept
  # a restart must not resume the divergence
  assert not os.path.exists(os.path.join(workdir, "backup"))

  monkeypatch.undo()
  resumed = fast_config(epochs=3)
  resumed.train.resume_from = good
  result = training.train(resumed, corpus_dir, workdir)
  assert len(result.history["loss"]) == 2 and all(np.isfinite(result.history["loss"]))
  assert _epoch_checkpoints(workdir) == ["epoch_003.weights.h5"]
  # appended, not lost
  assert pd.read_csv(os.path.join(workdir, "history.csv"))["epoch"].tolist() == [0, 1, 2]


def test_non_finite_weights_stop_at_the_epoch_end(tmp_path):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  checkpoint = callbacks.EpochCheckpoint(str(tmp_path))
  checkpoint.set_model(model)
  checkpoint.on_epoch_end(0)
  guard = callbacks.StopOnNaN(checkpoint)
  guard.set_model(model)
  guard.on_epoch_end(1)  # finite: nothing happens
  model.layers[0].kernel.assign([[np.inf], [0.0]])
  with pytest.raises(callbacks.TrainingDiverged,
                     match=r"weights became non-finite during epoch 2.*epoch_001"):
    guard.on_epoch_end(1)


def test_same_seed_and_config_give_the_same_metrics(corpus_dir, tmp_path):
  cfg = fast_config(epochs=2)
  cfg.augment.rotation = 0.1  # random augmentation too must repeat
  first = training.train(cfg, corpus_dir, str(tmp_path / "a"))
  second = training.train(cfg, corpus_dir, str(tmp_path / "b"))
  assert tf_config.is_op_determinism_enabled()  # no public getter exists
  assert first.history == second.history
  for report in (first.report, second.report):
    # wall-clock time varies between identical runs
    for timed in ("fit_seconds", "images_per_second"):
      del report["training"][timed]
  assert first.report == second.report
  for a, b in zip(first.model.get_weights(), second.model.get_weights()):
    np.testing.assert_array_equal(a, b)


def _layer_classes(config) -> set[str]:
  """Every class_name in a saved model's config, however deeply nested."""
  found = set()
  if isinstance(config, dict):
    if "class_name" in config:
      found.add(config["class_name"])
    for value in config.values():
      found |= _layer_classes(value)
  elif isinstance(config, list):
    for value in config:
      found |= _layer_classes(value)
  return found


@pytest.mark.parametrize("name", registry.names("model"))
def test_every_model_saves_without_lambda_and_loads_in_safe_mode(name, tmp_path):
  # keras.applications need >= 32 px
  cfg = fast_config(image_size=32 if name == "keras_app" else 16, model=name)
  labels = ["cat", "dog", "sun"]
  model = models.build(cfg.model, len(labels), cfg.data.image_size)
  model.compile(optimizer=optimizers.make_optimizer(cfg.optimizer, 1, 1),
                loss=losses.make_loss(cfg.loss, labels, None),
                metrics=[keras.metrics.F1Score(average="micro", threshold=0.5)])
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (4, cfg.data.image_size, cfg.data.image_size, 3)).astype(np.float32)
  # builds its state
  model.fit(images, (rng.random((4, len(labels))) < 0.5).astype(np.float32), epochs=1, verbose=0)
  wrapped = inference.build(model, labels, np.array([0.3, 0.5, 0.7], np.float32))
  for saved in (model, wrapped):
    path = str(tmp_path / f"{saved.name}.keras")
    saved.save(path)
    with zipfile.ZipFile(path) as archive:
      classes = _layer_classes(json.loads(archive.read("config.json")))
    assert "Lambda" not in classes, f"{name}: a Lambda layer cannot load with safe_mode=True"
    reloaded = keras.saving.load_model(path, safe_mode=True)
    if saved is model:  # the compiled loss and metrics come back too
      assert type(reloaded.loss) is type(model.loss) and reloaded.optimizer.iterations.numpy() == 1
    expected, got = saved.predict(images, verbose=0), reloaded.predict(images, verbose=0)
    for key in (expected if isinstance(expected, dict) else [None]):
      np.testing.assert_allclose(got[key] if key else got, expected[key] if key else expected,
                                 atol=1e-6)
