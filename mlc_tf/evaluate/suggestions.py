"""What to tag next: untagged photos ranked by how much tagging them would teach the model.

Two steps, both cheap (one forward pass per photo, then numpy):

1. **Score** (``scores``). For each photo and label, how unsure the model is:
   ``u = 1 - |p - t| / t`` below the label's calibrated threshold ``t`` and
   ``1 - |p - t| / (1 - t)`` above it: 1 when the probability sits on the
   threshold, 0 at 0 and at 1 (the threshold, not 0.5, is where the model's
   decision flips; with ``t = 0.05``, ``p = 0.01`` is fairly sure already). Each label
   is weighted toward the rare ones, ``w = min(1 / train prior, cap)``: rare
   labels have the fewest examples and the weakest F1, so an answer about one
   teaches more, and the cap keeps a label with a handful of positives from
   drowning the rest. A photo's score is ``sum_l w_l u_l``.
2. **Diverse picks** (``pick_diverse``). Greedy: take the photo with the
   highest gain, where gain is its score times ``1 - diversity * s``, ``s``
   its largest cosine similarity (clipped at 0) to the photos already taken,
   on the network's pooled features (``inference.with_features``: the input of
   the last Dense layer; ``prediction.probabilities_and_features`` computes both
   for files), centred and L2-normalised. A near-duplicate of a taken photo
   (``s`` near 1) gains almost nothing, so fifty frames of one burst are not
   fifty suggestions; ``diversity=0`` is the plain score ranking. Chosen over
   k-center (core-set) selection, which ignores the scores, and clustering,
   which needs a cluster count: this needs neither, and costs count x N dot
   products.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import numpy as np

from mlc_tf import atomic_files

RARITY_CAP = 20.0
# A label counts as one the photo is "unsure of" (the CSV's column) from this uncertainty on.
UNSURE_FROM = 0.5
CSV_COLUMNS = ("file", "rank", "score", "unsure_labels", "model_labels")


@dataclasses.dataclass(frozen=True)
class Suggestion:
  file: str
  rank: int                         # 1: tag first
  score: float                      # the photo's score (step 1), before the diversity discount
  unsure_labels: tuple[str, ...]    # most teaching first
  model_labels: tuple[str, ...]     # what the model decides now, at its thresholds


def uncertainty(probabilities: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """Returns [N, L] in [0, 1]: 1 on a label's threshold, falling linearly to 0 at 0 and at 1."""
  probabilities = np.asarray(probabilities, np.float64)
  thresholds = np.broadcast_to(np.asarray(thresholds, np.float64), probabilities.shape)
  side = np.where(probabilities < thresholds, thresholds, 1 - thresholds)  # the way to its end
  return np.clip(1 - np.abs(probabilities - thresholds) / np.maximum(side, 1e-12), 0, 1)


def rarity_weights(train_prior: np.ndarray | None, num_labels: int,
                   cap: float = RARITY_CAP) -> np.ndarray:
  """Returns each label's weight ``min(1 / prior, cap)``; all 1 when the priors are unknown."""
  if train_prior is None:
    return np.ones(num_labels)
  return np.minimum(1 / np.maximum(np.asarray(train_prior, np.float64), 1 / cap), cap)


def scores(probabilities: np.ndarray, thresholds: np.ndarray, train_prior: np.ndarray | None,
           cap: float = RARITY_CAP) -> np.ndarray:
  """Returns each photo's score: its per-label uncertainty, weighted toward rare labels, summed."""
  return _weighted(probabilities, thresholds, train_prior, cap).sum(axis=1)


def _weighted(probabilities, thresholds, train_prior, cap=RARITY_CAP) -> np.ndarray:
  """[N, L]: each label's uncertainty times its rarity weight."""
  weights = rarity_weights(train_prior, np.shape(probabilities)[1], cap)
  return uncertainty(probabilities, thresholds) * weights


def pick_diverse(photo_scores: np.ndarray, embeddings: np.ndarray, count: int,
                 diversity: float = 1.0) -> list[int]:
  """Returns ``count`` (at most N) row indices in the order picked: greedy on score x (1 -
  diversity x largest cosine similarity to those picked)."""
  features = np.asarray(embeddings, np.float64)
  features = features - features.mean(axis=0)
  features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  photo_scores = np.asarray(photo_scores, np.float64)
  nearest = np.zeros(len(photo_scores))  # largest similarity to a picked photo, clipped at 0
  free = np.ones(len(photo_scores), bool)
  picked = []
  for _ in range(min(count, len(photo_scores))):
    gain = np.where(free, photo_scores * (1 - diversity * nearest), -np.inf)
    best = int(np.argmax(gain))
    picked.append(best)
    free[best] = False
    nearest = np.maximum(nearest, np.clip(features @ features[best], 0, 1))
  return picked


def suggest(files: list[str], probabilities: np.ndarray, embeddings: np.ndarray,
            thresholds: np.ndarray, train_prior: np.ndarray | None, label_names: list[str],
            count: int, diversity: float = 1.0) -> list[Suggestion]:
  """Returns the ``count`` photos to tag next, ranked (module docstring)."""
  if count < 1:
    raise ValueError(f"count must be at least 1, got {count}")
  probabilities = np.asarray(probabilities)
  raw = uncertainty(probabilities, thresholds)
  unsure = _weighted(probabilities, thresholds, train_prior)
  photo_scores = unsure.sum(axis=1)
  suggestions = []
  for rank, row in enumerate(pick_diverse(photo_scores, embeddings, count, diversity), start=1):
    order = np.argsort(-unsure[row], kind="stable")
    suggestions.append(Suggestion(
        files[row], rank, round(float(photo_scores[row]), 4),
        tuple(label_names[k] for k in order if raw[row, k] >= UNSURE_FROM),
        tuple(name for name, p, t in zip(label_names, probabilities[row], thresholds) if p >= t)))
  return suggestions


def train_prior(model_path: str, label_names: list[str]) -> np.ndarray | None:
  """Returns each label's share of positives in the run's test split (stratified as its training
  split), from the ``report.json`` beside the model; None without one."""
  folder = model_path if os.path.isdir(model_path) else os.path.dirname(model_path)
  path = os.path.join(folder, "report.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    report = json.load(f)
  per_label = report.get("at_calibrated", {}).get("per_label", {})
  if not report.get("num_images") or any(name not in per_label for name in label_names):
    return None
  return np.array([per_label[name]["support"] for name in label_names]) / report["num_images"]


def write_csv(path: str, suggestions: list[Suggestion]) -> None:
  """Writes the suggestions as CSV (``CSV_COLUMNS``; label lists space-separated), atomically.

  File names are written as they are (not made spreadsheet-safe): ``mlc-review --suggestions``
  reads them back.
  """
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(CSV_COLUMNS)
  for s in suggestions:
    writer.writerow([s.file, s.rank, f"{s.score:.4f}",
                     " ".join(s.unsure_labels), " ".join(s.model_labels)])
  atomic_files.write_text(path, out.getvalue())
