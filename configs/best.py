"""Our best recipe on the flickr14 corpus: a ResNet-18-shaped network at 64 px, random crops, label
rules, AdamW with warm-up and cosine decay, in a 60-minute budget; a final fit on every labelled
image, exported as saved_models/best/<version>/, which answers with the mean over the photo and its
mirror image.

  mlc-train --config=configs/best.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/best

Its figures come from the protocol run (70 % of the images training, a test split):

  mlc-train --config=configs/best.py --data_dir=../shared/datasets/flickr14 \
    --workdir=workdirs/best_protocol --config.data.val_fraction=0.15 \
    --config.data.test_fraction=0.15 --noexport

At most 60 minutes on any machine, export included: the run measures its speed and plans the epochs
that fit. The command end to end on 2-core CPUs, each to itself: 30 min on an AMD EPYC Zen 5
(bfloat16, 40 epochs), 47 min on an Intel Xeon with AMX (bfloat16, 40 epochs, timed before the
budget existed). An AVX2-only AMD EPYC trains the fallback below (float32) at about 86 images/s:
the protocol run's 40 epochs of 5,392 photos took 43 min end to end there; this command's 6,917
photos (40 epochs) took 52 min 10 s, export included.
Figures, timings and the recipes before it: docs/results.md.
"""

import mlc_tf.configs.common as mcc
from mlc_tf import config as base
from mlc_tf import factory


def get_config(arg=None):
  choices = factory.parse_choices(arg)
  config = base.base_config()
  config.data.labels = list(mcc.FLICKR14_LABELS)
  config.data.image_size = 64
  # A final fit: it holds out only the 10 % that choose the epoch and the thresholds, so its own
  # report (of that part) is optimistic; the test figures come from the protocol run.
  config.data.val_fraction = 0.10
  config.data.test_fraction = 0.0
  config.augment.flip = "horizontal"
  config.augment.translate = 0.125  # random 64-px crops of the image padded by 8 px
  config.augment.brightness = 0.1
  config.augment.contrast = 0.1
  config.rules.implications = mcc.FLICKR14_RULES
  # ResNet-18's shape: basic blocks 2-2-2-2, widths 32-64-128-256; a stride-1 stem keeps the first
  # stage at 64x64.
  factory.choose(config, "model", "resnet", choices, width=32, blocks=8, stages=4, stem_stride=1,
                 dropout=0.3)
  # It answers with the mean over the photo and its mirror image, thresholds calibrated on that mean
  # (twice the inference cost): on the hour's 128-px network, +0.005 micro-F1, +0.025 macro-F1 and
  # +0.013 mAP, both splits up (docs/results.md, "Flip averaging at the hour").
  config.model.flip_average = True
  factory.choose(config, "loss", "bce", choices)
  factory.choose(config, "optimizer", "adamw", choices, weight_decay=5e-4)
  config.optimizer.learning_rate = 2e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_epochs = 2.0  # 5 % of 40 epochs
  config.optimizer.min_lr_fraction = 0.01
  config.train.batch_size = 64
  config.train.budget = "60m"  # the whole command, export included; the decay ends with it
  config.train.epochs = 40  # the most worth running: a fast machine stops here
  # Where the hour holds fewer than its 40 epochs of this network (measured a few steps in; a 2-core
  # AVX2-only CPU: 11-19), a cheaper one: the photos' own 128 px through a stride-4 stem (a stride-2
  # conv and a 2x2 max-pool), its first stage at 32x32, the convolutions' cost at 32 px. Its 40
  # epochs score level with this network's 40 (two splits each: 0.678 / 0.502 / 0.544 in float32 on
  # an AVX2 EPYC, 0.679 / 0.500 / 0.529 in bfloat16 on a Zen 5) and above its 20 (0.648 / 0.462 /
  # 0.476), so a network that gets fewer than 40 loses to it (docs/results.md, "The 128-px fallback
  # over the whole hour").
  config.train.fallback.below_epochs = 40
  config.train.fallback.changes = {"data": {"image_size": 128}, "model": {"stem_stride": 4}}
  config.train.early_stopping_patience = 40  # the schedule sets the length; the best epoch is kept
  config.export.name = "best"
  return config
