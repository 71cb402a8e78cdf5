"""Numbers that judge a multi-label classifier: thresholds, AP, per-label and averaged P/R/F1,
set-level scores."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
from sklearn import metrics as skm

from mlc_tf import markdown
from mlc_tf.data import label_rules


def f1_optimal_thresholds(y_true: np.ndarray, probs: np.ndarray,
                          default: float = 0.5) -> np.ndarray:
  """Returns, per label, the decision threshold (predict 1 when prob >= t) that maximises its F1.

  The threshold lies midway between the lowest positive-predicted score and the
  next lower score.

  Labels without a positive example keep ``default``: there is nothing to calibrate on.
  """
  y_true = np.asarray(y_true)
  probs = np.asarray(probs, np.float64)
  thresholds = np.full(y_true.shape[1], default, np.float32)
  for label in range(y_true.shape[1]):
    if not y_true[:, label].any():
      continue
    precision, recall, candidates = skm.precision_recall_curve(y_true[:, label], probs[:, label])
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    best = int(np.argmax(f1))
    # Midway to the next lower score: same decisions here, a margin for unseen images and float32.
    thresholds[label] = (candidates[best] + (candidates[best - 1] if best else 0.0)) / 2
  return thresholds


def decide(probs: np.ndarray, thresholds: np.ndarray | float, label_names: Sequence[str] = (),
           implications: Iterable[tuple[str, str]] = ()) -> np.ndarray:
  """Makes 0/1 decisions [N, L] as the inference model does: thresholds, then label rules.

  The one place probabilities become decisions outside the graph. Thresholds
  are compared in the probabilities' dtype, as ``layers.DecisionThresholds``
  does, so the decisions match the served model's.

  Args:
    thresholds: one per label, or one for all.
    label_names, implications: the label rules (``a=>b``) raised after the
      thresholds, over the labels in this order; none by default.
  """
  probs = np.asarray(probs)
  dtype = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.float64
  decided = (probs >= np.asarray(thresholds, dtype)).astype(np.int32)
  implications = list(implications)
  return label_rules.apply_implications(decided, label_names,
                                        implications) if implications else decided


def _as_labels(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
  """``y_true``, ``y_pred`` [N, L] and the keywords that make scikit-learn score each column as a
  label.

  scikit-learn reads one column as a binary target with two classes, 0 and 1
  (per-class scores for both, micro F1 = accuracy) and refuses samplewise
  scores; that column scored as class 1 alone (``labels=[1]``) is the one
  label of a binary tagger, scored as any label of a multi-label one.
  """
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
  if y_true.ndim == 2 and y_true.shape[1] == 1:
    return y_true[:, 0], y_pred[:, 0], {"labels": [1]}
  return y_true, y_pred, {}


def micro_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
  """Returns (micro F1, macro F1) of 0/1 decisions ``y_pred`` against ``y_true``."""
  y_true, y_pred, labels = _as_labels(y_true, y_pred)
  return (float(skm.f1_score(y_true, y_pred, average="micro", zero_division=0, **labels)),
          float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0, **labels)))


def bootstrap_f1_interval(y_true: np.ndarray, y_pred: np.ndarray, samples: int = 1000,
                          confidence: float = 0.95,
                          seed: int = 0) -> dict[str, tuple[float, float]]:
  """Bootstraps a percentile interval of micro and macro F1, resampling images with replacement.

  How far the figures of one test split could move on another draw of as
  many images: differences between runs smaller than this are not evidence.

  Args:
    y_true: 0/1 targets [N, L].
    y_pred: 0/1 decisions [N, L].
    samples: how many bootstrap resamples to draw.
    confidence: the interval's coverage, e.g. 0.95.
    seed: seed of the resampling.

  Returns:
    ``{"micro_f1": (low, high), "macro_f1": (low, high)}``.
  """
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
  rng = np.random.default_rng(seed)
  scores = np.array([micro_macro_f1(y_true[rows], y_pred[rows])
                     for rows in rng.integers(0, len(y_true), size=(samples, len(y_true)))])
  low, high = np.percentile(scores, [50 * (1 - confidence), 50 * (1 + confidence)], axis=0)
  return {"micro_f1": (float(low[0]), float(high[0])), "macro_f1": (float(low[1]), float(high[1]))}


def average_precision(y_true: np.ndarray, probs: np.ndarray, label_names: list[str]) -> dict:
  """Computes per-label average precision (AP: area under the PR curve, threshold-free) and mAP.

  A label without a positive image has no AP (``None``) and stays out of the mean.
  """
  y_true, probs = np.asarray(y_true), np.asarray(probs)
  per_label = {
      name: (float(skm.average_precision_score(y_true[:, k], probs[:,
                                                                   k])) if y_true[:,
                                                                                  k].any() else None
            ) for k, name in enumerate(label_names)
  }
  defined = [ap for ap in per_label.values() if ap is not None]
  return {"per_label": per_label, "map": float(np.mean(defined)) if defined else None}


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> dict:
  """Computes per-label precision/recall/F1/support, micro/macro/samples averages and set scores.

  Samples F1 averages each image's own F1; an image with no true and no
  predicted label counts as a perfect 1 (sklearn's ``zero_division=1``), so a
  corpus with many unlabelled images is not scored as if they were all wrong.
  ``exact_match`` is the share of images whose whole label set is right;
  ``hamming_loss`` the share of wrong image-label decisions. One label (a
  binary tagger) is scored as any label (``_as_labels``); an image's F1 is
  then 1 where its decision is right, so samples F1 is the exact-match share.
  """
  y_true, y_pred, labels = _as_labels(y_true, y_pred)
  precision, recall, f1, support = skm.precision_recall_fscore_support(
      y_true, y_pred, average=None, zero_division=0, **labels)
  report = {"per_label": {
      name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
      for name, p, r, f, s in zip(label_names, precision, recall, f1, support)}}
  for average in ("micro", "macro"):
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                     zero_division=0, **labels)
    report[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
  samples_f1 = (skm.accuracy_score(y_true, y_pred) if labels else
                skm.f1_score(y_true, y_pred, average="samples", zero_division=1.0))
  report["samples"] = {"f1": float(samples_f1)}
  report["exact_match"] = float(skm.accuracy_score(y_true, y_pred))
  report["hamming_loss"] = float(skm.hamming_loss(y_true, y_pred))
  return report


def evaluate(y_true: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, label_names: list[str],
             decision_rules: Callable[[np.ndarray], np.ndarray] | None = None,
             decisions: np.ndarray | None = None) -> dict:
  """Computes average precision, and reports at a flat 0.5 and at the calibrated thresholds.

  ``decisions``: what the model decided at its calibrated thresholds (the
  inference model's ``decisions`` output, which the export serves); without
  them they are derived from ``thresholds``. ``decision_rules`` post-processes
  derived 0/1 decisions as the exported model does (e.g. label implications)
  before they are scored.

  Args:
    y_true: 0/1 targets [N, L].
    probs: probabilities [N, L].
    thresholds: the calibrated per-label thresholds [L].
    label_names: the labels, in column order.
    decision_rules: post-processing of derived 0/1 decisions; none by default.
    decisions: the model's own 0/1 decisions [N, L] at ``thresholds``, if given.

  Returns:
    A dict: num_images, thresholds, average_precision (``average_precision``),
    at_0.5 and at_calibrated (``classification_report``).
  """
  rules = decision_rules or (lambda decisions: decisions)
  if decisions is None:
    decisions = rules(decide(probs, thresholds))
  return {
      "num_images": int(len(y_true)),
      "thresholds": {name: float(t) for name, t in zip(label_names, thresholds)},
      "average_precision": average_precision(y_true, probs, label_names),
      "at_0.5": classification_report(y_true, rules(decide(probs, 0.5)), label_names),
      "at_calibrated": classification_report(y_true, decisions, label_names),
  }


def _number(value: float | None) -> str:
  return "–" if value is None else f"{value:.3f}"


def format_report(result: dict, split: str = "test") -> str:
  """Formats a report as Markdown: per label and averaged at 0.5 and calibrated thresholds, then
  set-level scores."""
  names = list(result["thresholds"])
  ap = result["average_precision"]
  flat, cal = result["at_0.5"], result["at_calibrated"]

  def scores(a: dict, b: dict) -> list[str]:
    return [f"{side[key]:.3f}" for side in (a, b) for key in ("precision", "recall", "f1")]

  rows = [[
      name, flat["per_label"][name]["support"],
      _number(ap["per_label"][name]), f"{result['thresholds'][name]:.3f}",
      *scores(flat["per_label"][name], cal["per_label"][name])
  ] for name in names]
  rows += [[f"**{average}**", "", "", "", *scores(flat[average], cal[average])]
           for average in ("micro", "macro")]
  rows.append([
      "**samples**", *[""] * 5, f"{flat['samples']['f1']:.3f}", "", "",
      f"{cal['samples']['f1']:.3f}"
  ])
  lines = [
      f"{split.capitalize()} images: {result['num_images']}; mAP {_number(ap['map'])}", "",
      *markdown.table([
          "label", "support", "AP", "threshold", "P@0.5", "R@0.5", "F1@0.5", "P@cal", "R@cal",
          "F1@cal"
      ], rows)
  ]
  if "interval_95" in cal:
    interval = cal["interval_95"]
    lines += ["", "95 % bootstrap interval over images, at calibrated thresholds: micro-F1 "
              f"{interval['micro_f1'][0]:.3f}–{interval['micro_f1'][1]:.3f}, macro-F1 "
              f"{interval['macro_f1'][0]:.3f}–{interval['macro_f1'][1]:.3f}"]
  lines += [
      "", *markdown.table(["image-level", "@0.5", "@calibrated"], [[
          "exact-match ratio", f"{flat['exact_match']:.3f}", f"{cal['exact_match']:.3f}"
      ], ["Hamming loss", f"{flat['hamming_loss']:.4f}", f"{cal['hamming_loss']:.4f}"]])
  ]
  return "\n".join(lines)


def scalar_metrics(result: dict) -> dict[str, float]:
  """Flattens every number of a report into a ``{"at_calibrated/micro/f1": value}`` dict (``None``
  left out).

  Used to average reports, e.g. across cross-validation folds.
  """
  flat = {}

  def walk(prefix: str, node) -> None:
    if isinstance(node, dict):
      for key, value in node.items():
        walk(f"{prefix}/{key}" if prefix else key, value)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
      flat[prefix] = float(node)

  walk("", result)
  return flat
