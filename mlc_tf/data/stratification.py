"""Train/validation/test splits and k folds that keep every label's proportion.

Both come from iterative stratification.
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit


def _stratified_take(targets: np.ndarray, fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Positions (rest, taken) with ``fraction`` of the rows taken, label proportions kept."""
  splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
  rest, taken = next(splitter.split(np.zeros(len(targets)), targets))
  return np.sort(rest), np.sort(taken)


def _with_empty(targets: np.ndarray) -> np.ndarray:
  """Targets plus a pseudo-label for images without any label, so their share is stratified too."""
  targets = np.asarray(targets)
  return np.concatenate([targets, (targets.sum(axis=1) == 0)[:, None]], axis=1)


def train_val_test_split(targets: np.ndarray, val_fraction: float, test_fraction: float,
                         seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Returns the row positions of the train, validation and test parts of [N, L] 0/1 targets.

  Images without any label are stratified too (as their own pseudo-label), so
  each part keeps the corpus's share of empty label sets.
  """
  if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ValueError(f"bad split fractions: val {val_fraction}, test {test_fraction}")
  targets = np.asarray(targets)
  with_empty = _with_empty(targets)
  positions = np.arange(len(targets))
  if test_fraction > 0:
    rest, test = _stratified_take(with_empty, test_fraction, seed)
  else:
    rest, test = positions, positions[:0]
  train, val = _stratified_take(with_empty[rest], val_fraction / (1 - test_fraction), seed + 1)
  return rest[train], rest[val], test


def kfold(targets: np.ndarray, num_folds: int, seed: int) -> list[np.ndarray]:
  """Returns the row positions of each of ``num_folds`` disjoint folds of [N, L] 0/1 targets.

  Every row is in exactly one fold; each fold keeps every label's proportion,
  and the share of images without any label, as closely as iterative
  stratification can.
  """
  if num_folds < 2:
    raise ValueError(f"cross-validation needs at least 2 folds, got {num_folds}")
  if num_folds > len(targets):
    raise ValueError(f"{num_folds} folds but only {len(targets)} images")
  splitter = MultilabelStratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
  return [
      np.sort(held_out)
      for _, held_out in splitter.split(np.zeros(len(targets)), _with_empty(targets))
  ]
