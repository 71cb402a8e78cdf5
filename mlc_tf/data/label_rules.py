"""Label rules: implications (``baby=>people``) and merges (male/female/people -> people).

An implication ``a=>b`` says that every image with label ``a`` also has
label ``b``. Rules close transitively (``a=>b`` and ``b=>c`` give ``a=>c``).
They are applied to training targets (fixing annotations that break them)
and to predictions: the ``LabelImplications`` layer (``mlc_tf.models.layers``) sits in the inference
model after the thresholds, so the exported model's decisions obey the rules
without anything from mlc_tf at serving time. Probabilities stay the
network's own.

A merge replaces several label columns by one whose value is their logical
OR, e.g. for an ablation that asks whether telling male from female hurts "people".
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mlc_tf.data import corpus as corpus_lib


def parse_implications(rules: Iterable[str]) -> list[tuple[str, str]]:
  """Parses ``["baby=>people", ...]`` into ``[("baby", "people"), ...]``; whitespace is ignored.

  The one parser of label rules, for configs and ``mlc-explore --rules`` alike.
  The older ``baby>people`` (mlc-explore's first syntax) is still read, with a warning.
  """
  pairs = []
  for rule in rules or ():
    text = str(rule)
    if "=>" not in text and text.count(">") == 1:
      logging.warning("label rule %r: the 'a>b' form is deprecated, write 'a=>b' as configs do",
                      text)
      text = text.replace(">", "=>")
    parts = [part.strip() for part in text.split("=>")]
    if len(parts) != 2 or not all(parts):
      raise ValueError(f"label rule {rule!r} is not of the form 'antecedent=>consequent'")
    if parts[0] == parts[1]:
      raise ValueError(f"label rule {rule!r} implies itself")
    pairs.append((parts[0], parts[1]))
  return pairs


def implication_matrix(label_names: Sequence[str],
                       implications: Iterable[tuple[str, str]]) -> np.ndarray:
  """Returns the [L, L] 0/1 matrix ``M`` with ``M[i, j] = 1`` when label i implies label j.

  The matrix is reflexive and transitively closed.
  """
  index = {name: i for i, name in enumerate(label_names)}
  matrix = np.eye(len(label_names), dtype=np.int64)
  for antecedent, consequent in implications:
    unknown = [name for name in (antecedent, consequent) if name not in index]
    if unknown:
      raise ValueError(f"label rule {antecedent}=>{consequent} names unknown label(s) {unknown}; "
                       f"labels: {list(label_names)}")
    matrix[index[antecedent], index[consequent]] = 1
  while True:  # transitive closure: at most L rounds
    closed = np.minimum(matrix @ matrix, 1)
    if np.array_equal(closed, matrix):
      return matrix.astype(np.float32)
    matrix = closed


def apply_implications(targets: np.ndarray, label_names: Sequence[str],
                       implications: Iterable[tuple[str, str]]) -> np.ndarray:
  """Raises every implied label of targets or decisions [N, L] in [0, 1] to its antecedents'.

  Returns a new array of the same dtype.

  0/1 rows get every implied label set; soft targets (probabilities) get ``b = max(b, a)`` for
  ``a=>b``, since an image is at least as likely to carry ``b`` as ``a``.
  """
  targets = np.asarray(targets)
  matrix = implication_matrix(label_names, implications)
  return np.max(targets.astype(np.float32)[:, :, None] * matrix, axis=1).astype(targets.dtype)


def merge_labels(frame: pd.DataFrame, merges: Mapping[str, Sequence[str]]) -> pd.DataFrame:
  """Returns a label frame where each ``merged: [sources]`` entry replaced its sources by their OR.

  The merged label may reuse a source's name (``people: [male, female, people]``).
  Label columns stay sorted by name, as ``corpus.load_corpus`` makes them.
  """
  frame = frame.copy()
  labels = set(corpus_lib.label_columns(frame))
  for merged, sources in (merges or {}).items():
    sources = list(sources)
    missing = sorted(set(sources) - labels)
    if not sources or missing:
      raise ValueError(
          f"label merge {merged!r} <- {sources}: unknown or no source label(s) {missing}")
    if merged in labels and merged not in sources:
      raise ValueError(
          f"label merge {merged!r} would overwrite an existing label it does not merge")
    column = frame[sources].max(axis=1).astype("uint8")
    frame = frame.drop(columns=sources)
    frame[merged] = column
    labels = (labels - set(sources)) | {merged}
  return frame[sorted(labels) + [corpus_lib.PATH_COLUMN]]
