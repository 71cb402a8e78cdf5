"""Noisy-student self-training on the real corpus: configs/best.py's recipe, plus the 5,000 untagged photos of
../shared/datasets/flickr14-unlabeled labelled by a teacher trained with best.py on the same split.

  # both stages in one command: the teacher (best.py, 40 epochs) into workdirs/self_training/teacher, then the student
  mlc-train --config=configs/self_training.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/self_training
  # or a teacher trained before on the same split, e.g. best.py's own run
  mlc-train --config=configs/self_training.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/self_training --config.self_training.teacher=workdirs/best

About 2 hours alone on a 2-core CPU with bfloat16 support (an estimate, not a timed run): the teacher is best.py's
fit (45 minutes, timed), the student 40 epochs of 6,915 labelled + 5,000 untagged images (1.7x the images per
epoch), plus a minute for the teacher to label the photos once. --config.self_training.max_images=N takes N photos.

The teacher's answers (soft: its probabilities; --config.self_training.targets=hard: its calibrated decisions)
are the untagged photos' targets; the student trains on them and the labelled images with best.py's random crops,
colour jitter and dropout. Validation and test stay labelled images. The teacher must split the corpus as the
student does (mlc_tf/train/self_training.py checks its config.json). For test figures, train with the protocol
overrides of configs/best.py (--config.data.val_fraction=0.15 --config.data.test_fraction=0.15 --noexport).

Why best.py does not do this (docs/results.md, "Levers, screened"): at 32 px on two splits, a 10-epoch student
beat its 10-epoch teacher's recipe by +0.016 micro-F1, but the same recipe trained 25 epochs, the compute of
teacher and student together, beat the student by +0.016 micro-F1, +0.034 macro-F1 and +0.041 mAP. Within a
fixed time, training longer won.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # configs/, for best.py
import best  # noqa: E402


def get_config(arg=None):
  config = best.get_config(arg)
  config.data.unlabeled = "../shared/datasets/flickr14-unlabeled"
  config.self_training.targets = "soft"
  config.self_training.teacher_epochs = config.train.epochs  # used only when no teacher is given
  config.export.name = "self_training"
  return config
