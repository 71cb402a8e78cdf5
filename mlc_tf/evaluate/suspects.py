"""Label suspects: the (image, label) pairs whose given label out-of-fold predictions most
confidently contradict.

Out-of-fold means each image is judged by the cross-validation model that
never trained on it, so a memorised wrong label cannot vouch for itself.

How far a prediction contradicts a label is measured against that model's own
calibrated threshold for the label, in logits: ``margin = logit(threshold) -
logit(probability)`` for a given label ("remove"?), ``logit(probability) -
logit(threshold)`` for a missing one ("add"?). Raw probabilities would not do:
a model's scores for a rare label can all sit near 0 (its F1-optimal
threshold then sits near 0 too), and every true positive of that label would
look like a confident "no". A margin of 2 means odds about e² ≈ 7 times past
the decision boundary.

The review CSV starts with the corrections-file columns (``image_id``,
``label``, ``action``): a reviewer deletes the rows the model got wrong and
hands the rest to training as ``--config.data.corrections``.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mlc_tf.evaluate import plots

SHEET_SIZE = 36  # images on the contact sheet: six rows of six
_EPSILON = 1e-6  # keeps logits finite for probabilities of exactly 0 or 1


def _logit(p: np.ndarray) -> np.ndarray:
  p = np.clip(np.asarray(p, np.float64), _EPSILON, 1 - _EPSILON)
  return np.log(p / (1 - p))


def margins(oof: pd.DataFrame, label_names: list[str]) -> np.ndarray:
  """How far, in logits, each out-of-fold prediction contradicts its given label past the fold
  model's threshold, (images, labels); negative where it agrees."""
  given = oof[label_names].to_numpy().astype(int)
  probabilities = oof[[f"prob_{name}" for name in label_names]].to_numpy()
  thresholds = oof[[f"threshold_{name}" for name in label_names]].to_numpy()
  return np.where(given == 1, _logit(thresholds) - _logit(probabilities),
                  _logit(probabilities) - _logit(thresholds))


def rank_suspects(oof: pd.DataFrame, label_names: list[str],
                  min_margin: float = 2.0) -> pd.DataFrame:
  """Ranks the suspects: one row per (image, label), largest margin first.

  Args:
    oof: out-of-fold predictions (``crossval``'s frame): image_id index,
      ``fold``, ``path`` (file sources), and per label its given 0/1 column,
      ``prob_<label>`` and ``threshold_<label>`` (the fold model's threshold).
    label_names: the labels to judge.
    min_margin: how far past the threshold, in logits, the prediction must
      contradict the given label; > 0.

  Returns:
    Columns image_id, label, action ("add"/"remove"), given, probability,
    threshold, margin, fold and, for file sources, path.
  """
  if min_margin <= 0:
    raise ValueError(f"min_margin must be > 0 (logits past the threshold), got {min_margin}")
  parts = []
  for name, margin in zip(label_names, margins(oof, label_names).T):
    given, prob = oof[name].to_numpy().astype(int), oof[f"prob_{name}"].to_numpy()
    threshold = oof[f"threshold_{name}"].to_numpy()
    flagged = margin >= min_margin
    parts.append(pd.DataFrame({
        "image_id": oof.index[flagged], "label": name,
        "action": np.where(given[flagged] == 1, "remove", "add"), "given": given[flagged],
        "probability": prob[flagged].round(4), "threshold": threshold[flagged].round(4),
        "margin": margin[flagged].round(3), "fold": oof["fold"].to_numpy()[flagged],
        **({"path": oof["path"].to_numpy()[flagged]} if "path" in oof else {})}))
  ranked = pd.concat(parts, ignore_index=True)
  return ranked.sort_values(["margin", "image_id", "label"], ascending=[False, True, True],
                            kind="stable", ignore_index=True)


def contact_sheet(suspects: pd.DataFrame, oof: pd.DataFrame, label_names: list[str], path: str,
                  max_images: int = SHEET_SIZE) -> str:
  """Draws the most suspect images (by their most confident row), captioned with given labels and
  the suggested fixes.

  Args:
    suspects: ``rank_suspects``'s rows (at least one).
    oof: the out-of-fold frame they were ranked from, with a ``path`` column.
    label_names: the labels whose given values the captions list.
    path: the PNG file to write.
    max_images: how many images the sheet shows at most.

  Returns:
    ``path``.
  """
  order = suspects.drop_duplicates("image_id")["image_id"].to_numpy()[:max_images]
  captions = []
  for image_id in order:
    given = [name for name in label_names if oof.at[image_id, name] == 1]
    caption = [(f"id {image_id}", plots.NEUTRAL),
               (f"given: {', '.join(given) or '(none)'}", plots.NEUTRAL)]
    for row in suspects[suspects["image_id"] == image_id].itertuples():
      if row.action == "remove":
        caption.append(
            (f"− {row.label}? p={row.probability:.3f} < {row.threshold:.3f}", plots.MISSED))
      else:
        caption.append(
            (f"+ {row.label}? p={row.probability:.3f} > {row.threshold:.3f}", plots.FALSE_POSITIVE))
    captions.append(caption)
  return plots.image_grid(
      [oof.at[i, "path"] for i in order], captions, path,
      f"Most suspect labels, {len(order)} of {suspects['image_id'].nunique()} images "
      "(out-of-fold; − given label the model rejects, + label the model sees but nobody gave)",
      max_lines=7)


def write_suspects(oof: pd.DataFrame, label_names: list[str], output_dir: str,
                   min_margin: float = 2.0,
                   top: int | None = None) -> tuple[pd.DataFrame, list[str]]:
  """Writes suspects.csv (the review / corrections file, ``top`` rows if set) and suspects.png.

  The contact sheet needs image files: it is left out for sources without
  paths (TFDS records), and when there is no suspect.

  Args:
    oof: out-of-fold predictions (see ``rank_suspects``).
    label_names: the labels to judge.
    output_dir: the folder to write into (created if absent).
    min_margin: how far past the threshold, in logits, a suspect must be; > 0.
    top: how many of the ranked rows to keep; all when None.

  Returns:
    (the suspects written, the paths written).
  """
  os.makedirs(output_dir, exist_ok=True)
  suspects = rank_suspects(oof, label_names, min_margin)
  if top is not None:
    suspects = suspects.head(top)
  csv_path = os.path.join(output_dir, "suspects.csv")
  suspects.to_csv(csv_path, index=False)
  written = [csv_path]
  if len(suspects) and "path" in oof:
    written.append(
        contact_sheet(suspects, oof, label_names, os.path.join(output_dir, "suspects.png")))
  return suspects, written
