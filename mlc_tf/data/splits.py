"""Train/validation/test splits that keep every label's proportion (iterative stratification)."""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit


def _stratified_take(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Positions (rest, taken) with ``fraction`` of the rows taken, label proportions kept."""
  splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
  rest, taken = next(splitter.split(np.zeros(len(targets)), targets))
  return np.sort(rest), np.sort(taken)


def train_val_test_split(targets: np.ndarray, val_fraction: float, test_fraction: float,
                         seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Row positions of the train, validation and test parts of a [N, L] 0/1 target matrix.

  Images without any label are stratified too (as their own pseudo-label), so
  each part keeps the corpus's share of empty label sets.
  """
  if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
    raise ValueError(f"bad split fractions: val {val_fraction}, test {test_fraction}")
  targets = np.asarray(targets)
  with_empty = np.concatenate([targets, (targets.sum(axis=1) == 0)[:, None]], axis=1)
  positions = np.arange(len(targets))
  if test_fraction > 0:
    rest, test = _stratified_take(with_empty, test_fraction, seed)
  else:
    rest, test = positions, positions[:0]
  train, val = _stratified_take(with_empty[rest], val_fraction / (1 - test_fraction), seed + 1)
  return rest[train], rest[val], test
