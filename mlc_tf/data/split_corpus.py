"""The split corpus a run trains on: a source opened, corrected, rule-fixed and split as ``config.data`` says."""

from __future__ import annotations

import dataclasses
import logging

import ml_collections
import pandas as pd

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import corrections, label_rules, sources


@dataclasses.dataclass
class SplitCorpus:
  """A loaded corpus split into train/validation/test parts: the frames share the label frame's columns."""

  label_names: list[str]
  train: pd.DataFrame
  val: pd.DataFrame
  test: pd.DataFrame
  audit: corpus_lib.CorpusAudit
  source: sources.Source | None = None  # where the frames' images are; None: their `path` column


def load_and_split(data_dir: str | None, cfg: ml_collections.ConfigDict) -> SplitCorpus:
  """Opens the corpus and splits it as ``cfg.data`` says.

  ``data_dir`` is a corpus directory or a source spec (``folder:``, ``csv:``,
  ``tfds:``, see ``mlc_tf.data.sources``); ``None`` reads ``cfg.data.source``.
  """
  source = sources.open_source(data_dir or cfg.data.source, cfg.data)
  source.frame = corrections.apply_file(source.frame, cfg.data.corrections)  # before the split, which reads it
  frame, audit = source.frame, source.audit
  logging.info("corpus %s: %d image files, %d kept, %d skipped as undecodable", source.spec, audit.num_images,
               audit.num_samples, len(audit.undecodable_images))
  for line in audit.warnings():
    logging.warning("corpus %s: %s", source.spec, line)
  if cfg.rules.merges:
    source.frame = label_rules.merge_labels(source.frame, cfg.rules.merges.to_dict())
  frame = source.frame
  label_names = corpus_lib.label_columns(frame)
  train, val, test = source.split(cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed)
  train, val, test = frame.iloc[train], frame.iloc[val], frame.iloc[test]
  implications = label_rules.parse_implications(cfg.rules.implications)
  if implications and cfg.rules.to_targets:  # the test split keeps its annotations: it is the judge
    train, val = (_with_implied_labels(part, label_names, implications) for part in (train, val))
  return SplitCorpus(label_names, train, val, test, audit, source)


def _with_implied_labels(frame: pd.DataFrame, label_names: list[str], implications) -> pd.DataFrame:
  fixed = label_rules.apply_implications(frame[label_names].to_numpy(), label_names, implications)
  changed = int((fixed != frame[label_names].to_numpy()).sum())
  if changed:
    logging.info("label rules set %d implied label(s) on %d images", changed, len(frame))
  frame = frame.copy()
  frame[label_names] = fixed
  return frame
