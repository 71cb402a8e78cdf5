"""The previous best recipe on the flickr14 corpus, which docs/results.md compares best.py to and
ablates: a small batch-normalized CNN at 128 px, AdamW with cosine decay, augmentation, label rules.

  mlc-train --config=configs/simple_cnn_128px.py --data_dir=../shared/datasets/flickr14 \
    --workdir=workdirs/simple_cnn_128px --noexport

About 27 minutes alone on the 2-core Intel Xeon development CPU (the whole command; docs/results.md,
"Configs and ablation"), holding the decoded 128-px images in memory (peak RSS 3.4-3.7 GB).
"""

import mlc_tf.configs.common as mcc
from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.labels = list(mcc.FLICKR14_LABELS)
  # The corpus's native 128 px, through a stride-2 first conv (model.stem_stride): the convolutions
  # cost what they do at 64 px.
  config.data.image_size = 128
  config.augment.flip = "horizontal"
  config.augment.zoom = 0.1
  config.augment.rotation = 0.03
  config.augment.brightness = 0.1
  config.augment.contrast = 0.1
  config.augment.grayscale = 0.1
  config.rules.implications = mcc.FLICKR14_RULES
  factory.choose(config, "model", "simple_cnn", choices, width=32, depth=4, dropout=0.3,
                 stem_stride=2)
  config.model.flip_average = False  # measured neutral here, for twice the inference cost
  factory.choose(config, "loss", "bce", choices)
  factory.choose(config, "optimizer", "adamw", choices, weight_decay=0.05)
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  config.optimizer.min_lr_fraction = 0.01
  config.train.batch_size = 64
  config.train.epochs = 20
  config.train.early_stopping_patience = 20  # the schedule sets the length; the best epoch is kept
  config.export.name = "simple_cnn_128px"
  return config
