"""One short run with the study's methods switched on: they reach the model, the report and the
export."""

import json
import os

import keras
import numpy as np
import pytest
from helpers import fast_config, make_tiny_corpus

from mlc_tf.data import split_corpus
from mlc_tf.evaluate import reports
from mlc_tf.models import inference
from mlc_tf.train import training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("corpus"))
  make_tiny_corpus(root, num_images=40)
  cfg = fast_config(epochs=1, model="resnet")
  cfg.model.update(dict(blocks=2, stages=2))
  cfg.loss.update(dict(name="weighted_bce", fp_weights={"cat": 2.0}, class_weight_power=0.5))
  cfg.optimizer.update(dict(name="adamw", schedule="cosine", warmup_epochs=0.5))
  cfg.balance.update(dict(over_represented=("cat",), under_fraction=0.5, repeat_threshold=0.5))
  cfg.rules.implications = ("dog=>sun",)
  cfg.model.flip_average = True
  cfg.train.tensorboard = True
  workdir = str(tmp_path_factory.mktemp("workdir"))
  return cfg, workdir, training.train(cfg, root, workdir), root


def test_checkpoint_and_tensorboard_are_written(trained):
  _, workdir, _, _ = trained
  assert os.path.exists(os.path.join(workdir, "best_epoch.keras"))
  assert os.listdir(os.path.join(workdir, "tensorboard"))


def test_exported_decisions_obey_the_label_rules(trained):
  _, workdir, result, _ = trained
  model = keras.saving.load_model(os.path.join(workdir, "model.keras"), safe_mode=True)
  assert model.get_layer("label_rules").implications == [("dog", "sun")]
  assert model.get_layer("flip_average")  # test-time flip averaging is part of the saved model
  images = np.random.default_rng(0).uniform(0, 255, size=(32, 16, 16, 3)).astype(np.float32)
  decisions = model.predict(images, verbose=0)["decisions"]
  dog, sun = result.label_names.index("dog"), result.label_names.index("sun")
  assert (decisions[:, sun] >= decisions[:, dog]).all()
  report = json.load(open(os.path.join(workdir, "report.json")))
  assert report["at_calibrated"]["per_label"]["sun"]["support"] >= 1


def test_evaluation_decides_like_the_model_label_rules_included(trained, tmp_path):
  cfg, workdir, result, root = trained
  model = inference.load(workdir)
  assert inference.implications(model) == [("dog", "sun")]
  data = split_corpus.load_and_split(root, cfg)
  layer = inference.decision_layer(model)
  answers = reports.predict_answers(model, data.test, layer.label_names, cfg)
  report, _ = reports.write_evaluation(str(tmp_path), data.test, answers, layer.thresholds.numpy(),
                                       layer.label_names,
                                       implications=inference.implications(model))
  # rules applied
  assert report["at_calibrated"]["per_label"] == result.report["at_calibrated"]["per_label"]


def test_label_rules_fix_training_targets_but_not_the_test_split(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=40)
  cfg = fast_config()
  cfg.rules.implications = ("dog=>sun",)
  data = split_corpus.load_and_split(root, cfg)
  for part in (data.train, data.val):
    assert (part["sun"] >= part["dog"]).all()
  assert ((data.test["dog"] == 1) & (data.test["sun"] == 0)).any() or len(data.test) < 5
