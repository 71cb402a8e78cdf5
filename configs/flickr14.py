"""The plain recipe on the flickr14 corpus: simple_cnn, BCE, Adam, 64 px, calibrated thresholds.

  mlc-train --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 \
    --workdir=workdirs/flickr14

Up to 30 epochs of about a minute each on the 2-core Intel Xeon development CPU (with AMX), fewer
when early stopping ends it; never timed to the end (docs/results.md).
"""

import mlc_tf.configs.common as mcc
from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.labels = list(mcc.FLICKR14_LABELS)
  config.data.image_size = 64
  factory.choose(config, "model", "simple_cnn", choices, width=32, depth=4, dropout=0.3)
  factory.choose(config, "loss", "bce", choices)
  factory.choose(config, "optimizer", "adam", choices)
  config.train.epochs = 30
  config.train.batch_size = 64
  config.export.name = "flickr14"
  return config
