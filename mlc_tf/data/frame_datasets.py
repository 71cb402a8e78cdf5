"""A label frame's images and targets as a tf.data pipeline, configured by a run's config."""

from __future__ import annotations

import ml_collections
import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline, source_base


def make(frame: pd.DataFrame, label_names: list[str], cfg: ml_collections.ConfigDict, training: bool,
         source: source_base.Source | None = None, batch_size: int | None = None, seed: int | None = None,
         drop_remainder: bool = False, sample_counts: np.ndarray | None = None) -> tf.data.Dataset:
  """``frame``'s rows as batches of (image, targets), in its order, as ``cfg`` sets the pipeline.

  Args:
    frame: rows of a label frame: its ``label_names`` columns are the targets.
    source: where the images are read from; ``None``: the frame's path column.
    batch_size, seed: ``None`` takes ``cfg.train.batch_size``, ``cfg.seed``.
    sample_counts: per-row expected draws per epoch (``balance.expected_counts``), or ``None``.
  """
  images = source.images(frame) if source is not None else frame[corpus_lib.PATH_COLUMN].to_numpy()
  return pipeline.make_dataset(
      images, frame[label_names].to_numpy(),
      image_size=cfg.data.image_size, batch_size=batch_size or cfg.train.batch_size, training=training,
      augment=cfg.augment, seed=cfg.seed if seed is None else seed, cache=cfg.data.cache,
      drop_remainder=drop_remainder, sample_counts=sample_counts)
