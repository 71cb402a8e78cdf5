"""Every recipe in configs/ loads, names real options, and builds its model and loss for the real labels."""

import glob
import importlib.util
import os

import pytest
from conftest import REPO_ROOT

from mlc_tf import models
from mlc_tf.train import losses, optimizers

FLICKR14_LABELS = ["baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                   "portrait", "river", "sea", "tree"]
CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds(path):
  spec = importlib.util.spec_from_file_location("recipe", path)
  recipe = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(recipe)
  cfg = recipe.get_config()
  assert cfg.export.name and "mlc-train" in recipe.__doc__  # the docstring gives the command
  models.build(cfg.model, len(FLICKR14_LABELS), cfg.data.image_size)
  losses.make_loss(cfg.loss, FLICKR14_LABELS, [[1] * len(FLICKR14_LABELS), [0] * len(FLICKR14_LABELS)])
  optimizers.make_optimizer(cfg.optimizer, 10, cfg.train.epochs)
