"""The study's first stage: its highly simplified CNN, MSE loss, SGD with momentum, batch 4, 32 px.

  mlc-train --config=configs/seed_baseline.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/seed_baseline --noexport

The starting point the later recipes improve on: no augmentation, no balancing, no label rules.
The report shows both a flat 0.5 threshold (what the study started with) and calibrated per-label
thresholds. Its fit took 3.3 minutes (8 epochs, early-stopped) on the 2-core Intel Xeon development
CPU (docs/results.md, "Configs and ablation").
"""

from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.image_size = 32
  config.augment.flip = ""  # no augmentation at all: the base config flips
  factory.choose(config, "model", "minimal_cnn", choices, width=16, dropout=0.0)
  factory.choose(config, "loss", "mse", choices)
  factory.choose(config, "optimizer", "sgd", choices, momentum=0.9)
  config.optimizer.learning_rate = 0.01
  config.train.batch_size = 4
  config.train.epochs = 10
  config.train.early_stopping_patience = 3
  config.export.name = "seed_baseline"
  return config
