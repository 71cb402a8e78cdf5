"""The split corpus a run trains on.

That is a source opened, corrected, rule-fixed and split as ``config.data`` says, with the additions
file's newly tagged photos in its training split.
"""

from __future__ import annotations

import dataclasses
import logging

import ml_collections
import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf.data import additions, corrections, label_rules, pipeline, source_base, sources
from mlc_tf.data import corpus as corpus_lib


@dataclasses.dataclass
class SplitCorpus:
  """A loaded corpus split into train/validation/test parts.

  The frames share the label frame's columns.
  """

  label_names: list[str]
  train: pd.DataFrame
  val: pd.DataFrame
  test: pd.DataFrame
  audit: corpus_lib.CorpusAudit
  # Where the frames' images are; None: their `path` column.
  source: source_base.Source | None = None
  # What self-training added to ``train`` (untagged images, teacher's targets;
  # mlc_tf/train/self_training.py).
  unlabeled: dict | None = None
  # What the additions file (config.data.additions) added to ``train``: newly tagged photos.
  additions: dict | None = None


def load_and_split(data_dir: str | None, cfg: ml_collections.ConfigDict) -> SplitCorpus:
  """Opens the corpus and splits it as ``cfg.data`` says.

  ``data_dir`` is a corpus directory or a source spec (``folder:``, ``csv:``,
  ``tfds:``, see ``mlc_tf.data.sources``); ``None`` reads ``cfg.data.source``.
  """
  source = sources.open_source(data_dir or cfg.data.source, cfg.data)
  _log_audit(source.spec, source.audit)
  frame = corrections.apply_file(source.frame, cfg.data.corrections)
  if cfg.rules.merges:
    frame = label_rules.merge_labels(frame, cfg.rules.merges.to_dict())
  # The one edit of the source: its split stratifies on these labels, and it is the whole corpus as
  # trained on.
  source.frame = frame
  label_names = corpus_lib.label_columns(frame)
  train, val, test = source.split(cfg.data.val_fraction, cfg.data.test_fraction,
                                  cfg.data.split_seed)
  train, val, test = frame.iloc[train], frame.iloc[val], frame.iloc[test]
  added = None
  if cfg.data.get("additions"):  # newly tagged photos join the training split only
    train, added = additions.join_training(train, frame, cfg.data.additions, cfg.data.strict)
  implications = label_rules.parse_implications(cfg.rules.implications)
  if implications and cfg.rules.to_targets:  # the test split keeps its annotations: it is the judge
    train, val = (_with_implied_labels(part, label_names, implications) for part in (train, val))
  return SplitCorpus(label_names, train, val, test, source.audit, source, additions=added)


def _log_audit(spec: str, audit: corpus_lib.CorpusAudit) -> None:
  logging.info("corpus %s: %d image files, %d kept, %d skipped as undecodable", spec,
               audit.num_images, audit.num_samples, len(audit.undecodable_images))
  for line in audit.warnings():
    logging.warning("corpus %s: %s", spec, line)


def _with_implied_labels(frame: pd.DataFrame, label_names: list[str], implications) -> pd.DataFrame:
  fixed = label_rules.apply_implications(frame[label_names].to_numpy(), label_names, implications)
  changed = int((fixed != frame[label_names].to_numpy()).sum())
  if changed:
    logging.info("label rules set %d implied label(s) on %d images", changed, len(frame))
  frame = frame.copy()
  frame[label_names] = fixed
  return frame


def dataset_of(frame: pd.DataFrame, label_names: list[str], cfg: ml_collections.ConfigDict,
               training: bool, source: source_base.Source | None = None,
               batch_size: int | None = None, seed: int | None = None, drop_remainder: bool = False,
               sample_counts: np.ndarray | None = None) -> tf.data.Dataset:
  """Makes ``frame``'s rows a dataset of (image, targets) batches, in order, as ``cfg`` sets it.

  Args:
    frame: rows of a label frame (one of a ``SplitCorpus``' parts): its ``label_names`` columns
      are the targets.
    label_names: the target columns.
    cfg: the run's config: image size, augmentation, batch size, seed, cache.
    training: shuffle and augment (the training part) or not.
    source: where the images are read from; ``None``: the frame's path column.
    batch_size, seed: ``None`` takes ``cfg.train.batch_size``, ``cfg.seed``.
    drop_remainder: drop the last, smaller batch.
    sample_counts: per-row expected draws per epoch (``balance.expected_counts``), or ``None``.

  Returns:
    The batched ``tf.data.Dataset`` of ``pipeline.make_dataset``.
  """
  images = source.images(frame) if source is not None else frame[corpus_lib.PATH_COLUMN].to_numpy()
  return pipeline.make_dataset(images,
                               frame[label_names].to_numpy(),
                               image_size=cfg.data.image_size,
                               batch_size=batch_size or cfg.train.batch_size,
                               training=training,
                               augment=cfg.augment,
                               seed=cfg.seed if seed is None else seed,
                               cache=cfg.data.cache,
                               drop_remainder=drop_remainder,
                               sample_counts=sample_counts)
