"""The built-in demo: a small CNN on the generated digits corpus (1,500 images, 6 labels).

  mlc-train                                  # same as --config=configs/demo.py

Generates the corpus on first use, trains, reports on the test split and exports
saved_models/demo/<version>/: about 1-2 minutes on a 2-core CPU (the first version's figure, not
timed since).
"""

from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.image_size = 32
  factory.choose(config, "model", "simple_cnn", choices, width=16, depth=4, dropout=0.3)
  factory.choose(config, "loss", "bce", choices)
  factory.choose(config, "optimizer", "adam", choices)
  config.train.epochs = 15
  config.train.batch_size = 32
  config.export.name = "demo"
  return config
