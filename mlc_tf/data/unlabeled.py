"""Untagged images (``config.data.unlabeled``).

They are a folder listed and audited like a corpus, without labels.

The folder holds the images directly, or in an ``images/`` sub-folder as a
corpus does; any file name with an image extension (``.jpg``, ``.png``, ...)
counts, the others are listed in the audit and ignored. Every image is
decoded once up front by the corpus audit (``corpus.audit_frame``): one that
cannot be decoded is skipped and named, so no epoch meets it; a file that
cannot be read at all stops the run, as in a corpus.

The frame has the label frame's shape without label columns: index
``image_id`` (the file's path) and a ``path`` column; self-training
(``mlc_tf.train.self_training``) adds the teacher's answers as label columns.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import image_formats

_EXAMPLES = 5


@dataclasses.dataclass
class UnlabeledAudit(corpus_lib.CorpusAudit):
  """A folder of untagged images' audit: also the files without an image extension (ignored)."""

  not_images: list[str] = dataclasses.field(default_factory=list)
  # Images drawn (self_training.max_images) and checked; num_images without a cap.
  num_drawn: int = 0

  def warnings(self) -> list[str]:
    lines = super().warnings()
    if self.not_images:
      lines.append(
          f"{len(self.not_images)} file(s) without an image extension "
          f"({', '.join(image_formats.EXTENSIONS)})"
          f" were ignored ({', '.join(self.not_images[:_EXAMPLES])})")
    return lines


def images_dir(root: str) -> str:
  """Returns where ``root``'s images are: its ``images/`` sub-folder if any, else ``root``."""
  if not tf.io.gfile.isdir(root):
    raise corpus_lib.CorpusError(
        f"folder of untagged images {root} does not exist (config.data.unlabeled)")
  inner = os.path.join(root, "images")
  return inner if tf.io.gfile.isdir(inner) else root


def load_unlabeled(root: str, *, max_images: int = 0, seed: int = 0,
                   strict: bool = False) -> tuple[pd.DataFrame, UnlabeledAudit]:
  """Lists and audits the untagged images of ``root``; (frame of the usable ones, audit).

  Args:
    root: a folder of images, or one holding ``images/``.
    max_images: 0 takes every image; else at most this many, drawn at random
      with ``seed`` before the audit (only those are decoded; a drawn image
      that turns out undecodable is skipped, not replaced).
    seed: the draw's seed.
    strict: every warning of the audit is an error (config.data.strict).

  Raises:
    corpus.CorpusError: no folder, no image in it, a file cannot be read, or
      ``strict`` and the audit has warnings; ``error.audit`` is the audit when it got that far.
  """
  folder = images_dir(root)
  audit = UnlabeledAudit(source=root)
  paths = []
  for name in corpus_lib.listdir(folder):
    path = os.path.join(folder, name)
    if name.lower().endswith(image_formats.EXTENSIONS):
      paths.append(path)
    elif not tf.io.gfile.isdir(path):
      audit.not_images.append(name)
  audit.num_images = len(paths)
  if not paths:
    raise corpus_lib.CorpusError(
        f"{folder} holds no image file ({', '.join(image_formats.EXTENSIONS)})", audit)
  if 0 < max_images < len(paths):
    drawn = np.random.default_rng(seed).choice(len(paths), size=max_images, replace=False)
    paths = [paths[i] for i in sorted(drawn)]
  audit.num_drawn = len(paths)
  frame = pd.DataFrame({corpus_lib.PATH_COLUMN: paths}, index=pd.Index(paths, name="image_id"))
  return corpus_lib.audit_frame(frame, audit, strict=strict), audit
