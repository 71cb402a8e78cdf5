"""The foundation's plain recipe on the real corpus: simple_cnn, BCE, Adam, 64 px, calibrated thresholds.

  mlc-train --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/flickr14

Not timed to the end at 64 px: a run here, sharing the 2 cores with two other trainings at lower
priority, did 9 of its 30 epochs in 22 minutes (validation micro-F1 0.63 by then) before it was
stopped to free the CPU. Each epoch costs about what one of configs/best.py's at 64 px does, so up
to ~30 epochs of about a minute alone, fewer when early stopping ends it.
"""

from mlc_tf import config as base


def get_config():
  config = base.base_config()
  config.data.labels = ["baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                        "portrait", "river", "sea", "tree"]
  config.data.image_size = 64
  config.model.width = 32
  config.train.epochs = 30
  config.train.batch_size = 64
  config.export.name = "flickr14"
  return config
