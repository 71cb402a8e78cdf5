"""Label health with cleanlab's confident learning on out-of-fold probabilities: how noisy each
label looks.

Confident learning (cleanlab, Northcutt et al. 2021) judges each label one-vs-rest on its own:
from the out-of-fold probabilities it estimates how many of the label's given positives are
really negatives (and the reverse), each side's confidence cut being the label's mean
probability over the images given that side, and flags that many pairs, those the model
contradicts most. Self-confidence (cleanlab's per-pair label quality score) is the
probability the model gives to the label's given value: ``p`` for a given label, ``1 - p`` for a
missing one.

``mlc_tf.evaluate.suspects`` ranks (image, label) pairs by another rule, the margin past the fold
model's calibrated threshold; measured against cleanlab's ranking on flickr14 it did as well or
better at the top of the list and was kept (docs/evaluation.md, "Label health: mlc-suspects and
cleanlab"). cleanlab's part is the per-label table, which ``mlc-explore --oof`` prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from cleanlab.multilabel_classification import filter as cleanlab_filter
from cleanlab.multilabel_classification import rank as cleanlab_rank

from mlc_tf import markdown


def oof_labels(oof: pd.DataFrame) -> list[str]:
  """The labels an out-of-fold frame scores: those with a ``prob_<label>`` column."""
  return [c[len("prob_"):] for c in oof.columns if c.startswith("prob_")]


def given_and_probabilities(oof: pd.DataFrame,
                            label_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Returns the given 0/1 labels and the out-of-fold probabilities, both (images, labels).

  Raises:
    ValueError: a column missing, no row, a given value not 0/1, or a probability missing or
      outside [0, 1] (naming the first images).
  """
  needed = [c for name in label_names for c in (name, f"prob_{name}")]
  missing = [c for c in needed if c not in oof]
  if missing:
    raise ValueError(f"the out-of-fold predictions lack column(s) {missing}")
  if oof.empty:
    raise ValueError("the out-of-fold predictions hold no image")
  given = oof[label_names].to_numpy(np.float64)
  probabilities = oof[[f"prob_{name}" for name in label_names]].to_numpy(np.float64)
  bad_given = ~np.isin(given, (0, 1)).all(axis=1)
  if bad_given.any():
    raise ValueError(f"given labels must be 0 or 1; image(s) {list(oof.index[bad_given][:5])} "
                     "have another value")
  bad = ~((probabilities >= 0) & (probabilities <= 1)).all(axis=1)  # NaN fails both
  if bad.any():
    raise ValueError(f"{int(bad.sum())} image(s) have a probability missing or outside [0, 1], "
                     f"e.g. {list(oof.index[bad][:5])}")
  return given.astype(np.int64), probabilities


def find_issues(oof: pd.DataFrame, label_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Runs confident learning per label.

  Returns:
    (flagged, quality), both (images, labels): whether cleanlab flags the pair as mislabelled, and
    its self-confidence (the probability given to the label's given value; lower: more suspect).
  """
  given, probabilities = given_and_probabilities(oof, label_names)
  labels = [list(np.flatnonzero(row)) for row in given]
  # n_jobs=1: the per-label work is small; a process pool costs more than it saves.
  flagged = cleanlab_filter.find_multilabel_issues_per_class(labels, probabilities, n_jobs=1)
  quality = cleanlab_rank.get_label_quality_scores_per_class(labels, probabilities)
  return np.asarray(flagged, bool), np.asarray(quality, np.float64).reshape(given.shape)


def label_health(oof: pd.DataFrame, label_names: list[str]) -> pd.DataFrame:
  """How noisy each label looks: one row per label, the noisiest (largest issue share) first.

  Columns: ``given`` (images carrying the label), ``suspected_false_positives`` (given pairs
  cleanlab flags) and ``suspected_false_negatives`` (missing pairs it flags; these two are
  cleanlab's ``common_multilabel_issues`` counts), ``issue_share`` (both over all images),
  ``false_positive_share`` (over the images given the label), ``false_negative_share`` (over the
  others), ``quality`` (the mean self-confidence of the label's given pairs, i.e. its mean
  out-of-fold probability on the images given it; NaN for a label nobody gave).
  """
  flagged, quality = find_issues(oof, label_names)
  given, _ = given_and_probabilities(oof, label_names)
  positives = given.sum(axis=0)
  negatives = len(given) - positives
  false_positives = (flagged & (given == 1)).sum(axis=0)
  false_negatives = (flagged & (given == 0)).sum(axis=0)
  health = pd.DataFrame({
      "label": label_names, "given": positives,
      "suspected_false_positives": false_positives,
      "suspected_false_negatives": false_negatives,
      "issue_share": (false_positives + false_negatives) / max(len(given), 1),
      "false_positive_share": false_positives / np.maximum(positives, 1),
      "false_negative_share": false_negatives / np.maximum(negatives, 1),
      "quality": np.where(given == 1, quality, 0).sum(axis=0) / np.where(positives, positives,
                                                                         np.nan)})
  return health.sort_values(["issue_share", "label"], ascending=[False, True], kind="stable",
                            ignore_index=True)


def health_markdown(health: pd.DataFrame, num_images: int) -> list[str]:
  """The health table's markdown lines, with a line saying what it is."""
  def percent(share: float) -> str:
    return f"{100 * share:.1f} %"

  return [f"Label health (cleanlab confident learning on out-of-fold probabilities, {num_images} "
          "images; noisiest first). It counts where the cross-validated model and the labels "
          "disagree: a weak model inflates every count, so compare labels with each other and "
          "review before believing a share.", "", *markdown.table(
              ["label", "given", "suspected FP", "suspected FN", "issue share", "FP share of given",
               "FN share of rest", "quality"],
              [[row.label, row.given, row.suspected_false_positives, row.suspected_false_negatives,
                percent(row.issue_share), percent(row.false_positive_share),
                percent(row.false_negative_share),
               "–" if np.isnan(row.quality) else f"{row.quality:.3f}"]
               for row in health.itertuples()])]
