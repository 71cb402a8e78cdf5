"""Every recipe in configs/ loads, declares its choices' knobs, and builds its model and loss for
the real labels."""

import glob
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, fast_config, make_tiny_corpus, run_cli

import mlc_tf.configs.common as mcc
from mlc_tf import config as config_lib
from mlc_tf import factory, models, registry
from mlc_tf.train import fallback, losses, optimizers

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.py")))


def _load(path):
  spec = importlib.util.spec_from_file_location("recipe", path)
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  return recipe


FLICKR14_LABELS = list(mcc.FLICKR14_LABELS)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds(path):
  recipe = _load(path)
  cfg = recipe.get_config()
  assert cfg.export.name and "mlc-train" in recipe.__doc__  # the docstring gives the command
  for kind in registry.KINDS:  # every knob of each choice declared, none of another
    shared = set(config_lib.base_config()[kind])
    assert set(cfg[kind]) - shared == set(registry.knobs(kind, cfg[kind].name)), kind
  config_lib.check_values(cfg)
  models.build(cfg.model, len(FLICKR14_LABELS), cfg.data.image_size)
  losses.make_loss(cfg.loss, FLICKR14_LABELS,
                   [[1] * len(FLICKR14_LABELS), [0] * len(FLICKR14_LABELS)])
  optimizers.make_optimizer(cfg.optimizer, 10, cfg.train.epochs)
  # the cheaper network a short budget trains instead builds too
  if cfg.train.fallback.below_epochs:
    fallback_cfg = fallback.with_changes(cfg, cfg.train.fallback.changes.to_dict())
    models.build(fallback_cfg.model, len(FLICKR14_LABELS), fallback_cfg.data.image_size)


def test_recipes_build_on_each_other_by_a_plain_import():
  """configs/ is on mlc_tf.configs' path: ``from mlc_tf.configs import best`` is configs/best.py."""
  from mlc_tf.configs import best

  assert os.path.samefile(best.__file__, os.path.join(REPO_ROOT, "configs", "best.py"))
  package = os.path.dirname(mcc.__file__)  # no module of the package may shadow a recipe
  assert not {os.path.basename(p) for p in CONFIGS} & set(os.listdir(package)) - {"__init__.py"}
  for path in CONFIGS:  # recipes neither load each other by path nor touch sys.path
    with open(path) as f:
      text = f.read()
    assert "sys.path" not in text and "importlib" not in text, os.path.basename(path)


def test_self_training_carries_best_values():
  best = _load(os.path.join(REPO_ROOT, "configs", "best.py")).get_config().to_dict()
  student = _load(os.path.join(REPO_ROOT, "configs", "self_training.py")).get_config().to_dict()
  assert student["data"].pop("unlabeled") and not best["data"].pop("unlabeled")
  assert student["export"].pop("name") == "self_training" and best["export"].pop("name") == "best"
  assert student["train"].pop("budget") is None and best["train"].pop("budget") == "60m"
  assert student["self_training"]["teacher_epochs"] == best["train"]["epochs"]
  del student["self_training"], best["self_training"]
  assert student == best  # everything else is best.py's


def test_recipe_values_and_builder_defaults():
  best = _load(os.path.join(REPO_ROOT, "configs", "best.py")).get_config()
  assert dict(best.model) == {
      "name": "resnet", "width": 32, "blocks": 8, "stages": 4, "stem_stride": 1, "se_ratio": 0,
      "dropout": 0.3, "first_labels": (), "flip_average": True
  }
  assert best.optimizer.weight_decay == 5e-4 and "momentum" not in best.optimizer
  assert best.train.budget == "60m" and best.train.fallback.below_epochs == 40
  assert best.train.fallback.changes.to_dict() == {"data": {"image_size": 128},
                                                   "model": {"stem_stride": 4}}
  student = _load(os.path.join(REPO_ROOT, "configs", "self_training.py")).get_config()
  # teacher and student train their epochs: best.py's hour would starve one
  assert student.train.budget is None
  baseline = _load(os.path.join(REPO_ROOT, "configs", "seed_baseline.py")).get_config()
  assert baseline.optimizer.momentum == 0.9 and baseline.optimizer.nesterov is False
  assert registry.knobs("model", "simple_cnn") == {"width": 32, "depth": 4, "dropout": 0.0,
                                                   "stem_stride": 1}


def test_config_argument_chooses_another_model_keeping_the_knobs_it_shares():
  recipe = _load(os.path.join(REPO_ROOT, "configs", "best.py"))
  cfg = recipe.get_config("model=simple_cnn,optimizer=adam")
  assert cfg.model.name == "simple_cnn" and "blocks" not in cfg.model
  assert (cfg.model.width, cfg.model.stem_stride, cfg.model.dropout, cfg.model.depth) == (32, 1,
                                                                                          0.3, 4)
  assert cfg.optimizer.name == "adam" and "weight_decay" not in cfg.optimizer
  factory.check_choices(cfg)
  with pytest.raises(ValueError, match="model=<name>"):
    recipe.get_config("modle=resnet")


def test_old_workdir_config_drops_knobs_its_model_does_not_take(tmp_path):
  """A config.json from before per-model knobs held every model's, loss's and optimizer's knobs."""
  old = config_lib.base_config().to_dict()
  old["model"].update(name="simple_cnn", width=8, depth=2, dropout=0.3, blocks=8, stages=4,
                      stem_stride=1, se_ratio=0, backbone="MobileNetV3Small", weights=None)
  old["loss"].update(gamma=2.0, alpha=0.25, margin=0.05, fp_weights={})
  old["optimizer"].update(momentum=0.9, weight_decay=1e-4)
  path = tmp_path / "config.json"
  path.write_text(json.dumps(old))
  cfg = factory.load_run_config(str(path))
  assert dict(cfg.model) == {
      "name": "simple_cnn", "width": 8, "depth": 2, "dropout": 0.3, "stem_stride": 1,
      "first_labels": (), "flip_average": False
  }
  assert dict(cfg.loss) == {"name": "bce"} and "momentum" not in cfg.optimizer
  assert models.build(cfg.model, 3, 16).name == "simple_cnn"


def test_override_of_an_undeclared_knob_names_the_new_spelling():
  with pytest.raises(AssertionError,
                     match=r"--config.model.blocks: the config has no such field.*:model=<name>"):
    run_cli("train", "--config=configs/demo.py", "--config.model.blocks=2",
            "--workdir=/nonexistent")
  with pytest.raises(AssertionError,
                     match=r"model 'resnet' takes no depth; its knobs: width=32, .*:model=<name>"):
    run_cli("train", "--config=configs/demo.py", "--config.model.name=resnet",
            "--workdir=/nonexistent")


BAD_VALUES = (("data.image_size", 0, "image_size=0"), ("data.image_size", -32, "image_size=-32"),
              ("train.batch_size", 0, "batch_size=0"), ("train.epochs", 0, "epochs=0"),
              ("train.epochs", -1, "epochs=-1"), ("model.dropout", 1.5, "dropout=1.5"),
              ("data.val_fraction", 0.75, "val_fraction + test_fraction = 1:"),
              ("data.test_fraction", 0.8, "val_fraction + test_fraction = 1.05"),
              ("data.val_fraction", 0.0, "val_fraction must be in (0, 1)"),
              ("optimizer.learning_rate", 0.0, "learning_rate=0.0"))


@pytest.mark.parametrize("field,value,message", BAD_VALUES, ids=lambda v: str(v))
def test_training_refuses_a_value_no_run_can_use_before_reading_or_writing(tmp_path, field,
                                                                           value, message):
  from mlc_tf.train import training
  cfg = fast_config()
  section, name = field.split(".")
  cfg[section][name] = value
  workdir = tmp_path / "run"
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    training.train(cfg, str(tmp_path / "no_such_corpus"), str(workdir))
  assert not workdir.exists()


def test_training_refuses_a_workdir_it_cannot_make(tmp_path):
  from mlc_tf.train import training
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=8)
  a_file = tmp_path / "a_file"
  a_file.write_text("mine")
  for workdir, message in ((a_file, "exists and is not a folder"),
                           (a_file / "run", "is not a folder")):
    with pytest.raises(config_lib.ConfigError, match=message):
      training.train(fast_config(), root, str(workdir))
  assert a_file.read_text() == "mine"


def test_mlc_train_says_each_bad_value_in_one_line_and_writes_nothing(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("")
  for args, message in (
      (["--config.data.image_size=0"], "config.data.image_size=0: must be a whole number"),
      (["--config.train.epochs=0"], "config.train.epochs=0: must be a whole number"),
      (["--config.data.val_fraction=0.6", "--config.data.test_fraction=0.4"],
       "val_fraction + test_fraction = 1: must be below 1"),
      ([f"--workdir={a_file}"], "exists and is not a folder")):
    proc = subprocess.run(
        [sys.executable, "-m", "mlc_tf.cli.train", f"--workdir={tmp_path / 'run'}", *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": REPO_ROOT})
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("mlc-train:")]
    assert proc.returncode == 1 and len(error_lines) == 1 and message in error_lines[0], (
        proc.stderr[-2000:])
  assert sorted(os.listdir(tmp_path)) == ["a_file"]
