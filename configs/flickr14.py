"""The foundation's plain recipe on the real corpus: simple_cnn, BCE, Adam, 64 px, calibrated thresholds.

  mlc-train --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/flickr14

About 12 minutes on a 2-core CPU (early stopping usually ends it before 30 epochs).
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
