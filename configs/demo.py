"""The built-in demo: a small CNN on the generated digits corpus (1,500 images, 6 labels).

  mlc-train                                  # same as --config=configs/demo.py

About 1-2 minutes on a 2-core CPU. Trains, reports on the test split, and
exports saved_models/demo/<version>/.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # configs/, for common.py
import common  # noqa: E402

from mlc_tf import config as base  # noqa: E402


def get_config(arg=None):
  choices = common.parse_arg(arg)
  config = base.base_config()
  config.data.image_size = 32
  common.choose(config, "model", "simple_cnn", choices, width=16, depth=4, dropout=0.3)
  common.choose(config, "loss", "bce", choices)
  common.choose(config, "optimizer", "adam", choices)
  config.train.epochs = 15
  config.train.batch_size = 32
  config.export.name = "demo"
  return config
