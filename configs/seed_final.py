"""The study's final recipe: balanced data, Adam, horizontal flips, per-label thresholds, 64 px, on
its seed CNN (four conv layers, 3x3 shrinking to 1x1, max-pooling after the later ones, dropout).

  mlc-train --config=configs/seed_final.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/seed_final --noexport

At least 14 minutes alone on the 2-core Intel Xeon development CPU (37 minutes of fit with two
other trainings sharing it; docs/results.md, "Configs and ablation").
"""

from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.image_size = 64
  config.augment.flip = "horizontal"
  # The study's balancing: half of the images labelled only people/male/female are dropped at random
  # each epoch (under-sampling), and the loss makes false positives of "people" cost twice as much.
  config.balance.over_represented = ("people", "male", "female")
  config.balance.under_fraction = 0.5
  factory.choose(config, "model", "seed_cnn", choices, width=32, depth=4, dropout=0.5)
  factory.choose(config, "loss", "weighted_bce", choices, fp_weights={"people": 2.0})
  factory.choose(config, "optimizer", "adam", choices)
  config.optimizer.learning_rate = 1e-3
  config.train.batch_size = 32
  config.train.epochs = 30
  config.train.early_stopping_patience = 5
  config.export.name = "seed_final"
  return config
