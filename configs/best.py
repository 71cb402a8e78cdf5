"""Our best recipe on the real corpus: a small BN CNN on 128 px, AdamW + cosine, augmentation, label rules.

  mlc-train --config=configs/best.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/best --noexport

About 27 minutes alone on a 2-core CPU (a run with the machine to itself: 26.7 min of fit,
27.1 min for the whole command); 71 min of fit while two other trainings shared the cores. Holds
the decoded 128-px images in memory (peak RSS 3.4-3.7 GB).
Test split (split_seed 0): micro-F1 0.665, macro-F1 0.491, mAP 0.493; on a second split
(split_seed 1) 0.648 / 0.464; training seed 1 on split 0: 0.648 / 0.467 — short of the issue's
0.75 / 0.55. The ablation of each part and the commands: docs/results.md.
"""

from mlc_tf import config as base


def get_config():
  config = base.base_config()
  config.data.labels = ["baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                        "portrait", "river", "sea", "tree"]
  # The corpus's native 128 px through a stride-2 first conv (model.stem_stride): the convolutions cost what
  # they do at 64 px (the input pipeline, on 4x the pixels, makes an epoch ~1.4x longer). It gained
  # +0.010 / +0.009 micro and +0.024 / +0.044 macro F1 over 64 px on two splits, no more than the
  # seed-to-seed spread (docs/results.md): not worse, maybe better.
  config.data.image_size = 128
  config.augment.flip = "horizontal"
  config.augment.zoom = 0.1
  config.augment.rotation = 0.03
  config.augment.brightness = 0.1
  config.augment.contrast = 0.1
  config.augment.grayscale = 0.1
  # Only humans are labelled male/female, and a baby is a person: targets that break this are labelling errors.
  config.rules.implications = ("baby=>people", "female=>people", "male=>people")
  # A plain conv-BN-ReLU-pool CNN with global pooling (393k weights) beat ResNets of 0.7M-2.8M weights here:
  # they overfit 5,400 training images (docs/results.md).
  config.model.name = "simple_cnn"
  config.model.width = 32
  config.model.depth = 4
  config.model.dropout = 0.3
  config.model.stem_stride = 2
  # Mirror averaging at test time measured neutral here (micro -0.002, macro -0.017, mAP +0.002) for twice
  # the inference cost: off. The 64-px ablation rows of docs/results.md were run with it on.
  config.model.flip_average = False
  config.loss.name = "bce"
  config.optimizer.name = "adamw"
  config.optimizer.learning_rate = 2e-3
  config.optimizer.weight_decay = 0.05
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 1.0
  config.optimizer.min_lr_fraction = 0.01
  config.train.batch_size = 64
  config.train.epochs = 20
  config.train.early_stopping_patience = 20  # the cosine schedule decides the length; the best epoch is kept
  config.export.name = "best"
  return config
