"""Noisy-student self-training on the real corpus: configs/best.py's recipe, plus the 5,000 untagged photos of
../shared/datasets/flickr14-unlabeled labelled by a teacher trained with best.py on the same split.

  mlc-train --config=configs/best.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/best
  mlc-train --config=configs/self_training.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/self_training --config.self_training.teacher=workdirs/best

The teacher's answers (soft: its probabilities; --config.self_training.targets=hard: its calibrated decisions)
are the untagged photos' targets; the student trains on them and the labelled images with best.py's random crops,
colour jitter and dropout. Validation and test stay labelled images. The teacher must split the corpus as the
student does (mlc_tf/train/self_training.py checks its config.json), so for the protocol figures train both with
the protocol run's overrides from configs/best.py (--config.data.val_fraction=0.15 --config.data.test_fraction=0.15
--config.train.epochs=40 --config.train.early_stopping_patience=40 --config.optimizer.warmup_epochs=2 --noexport).

About 85-95 minutes alone on a 2-core CPU with bfloat16 support: an estimate, not a timed run, scaled from
best.py's (idle training throughput 55.9 images/s, 22 epochs) to 6,914 labelled + 5,000 untagged training images,
plus a minute or two for the teacher to label the photos once. --config.train.epochs=13 keeps best.py's number of
optimizer steps (its 50-56 minutes); --config.self_training.max_images=N takes N of the photos.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # configs/, for best.py
import best  # noqa: E402


def get_config(arg=None):
  config = best.get_config(arg)
  config.data.unlabeled = "../shared/datasets/flickr14-unlabeled"
  config.self_training.targets = "soft"
  config.export.name = "self_training"
  return config
