"""The study's first stage: its highly simplified CNN, MSE loss, SGD with momentum, batch 4, 32 px.

  mlc-train --config=configs/seed_baseline.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/seed_baseline --noexport

No augmentation, no balancing, no label rules: the starting point the later
configs improve on. The report still shows both a flat 0.5 threshold (what
the study started with) and calibrated per-label thresholds. Measured time:
see docs/results.md (a few minutes on a 2-core CPU).
"""

from mlc_tf import config as base


def get_config():
  config = base.base_config()
  config.data.image_size = 32
  config.augment.flip = ""
  config.model.name = "minimal_cnn"
  config.model.width = 16
  config.model.dropout = 0.0
  config.loss.name = "mse"
  config.optimizer.name = "sgd"
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.train.batch_size = 4
  config.train.epochs = 10
  config.train.early_stopping_patience = 3
  config.export.name = "seed_baseline"
  return config
