"""Judging a trained model on a corpus split: the numbers (markdown + JSON) and the figures, in one folder."""

from __future__ import annotations

import os

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import label_rules, sources, split_corpus
from mlc_tf.evaluate import metrics, plots
from mlc_tf.train import training

SPLITS = ("train", "val", "test", "all")
GRID_SIZE = 18  # images per sample grid: three rows of six


def split_frame(data: split_corpus.SplitCorpus, split: str) -> pd.DataFrame:
  """One part of a split corpus by name, or all of it (in image id order) for ``"all"``."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
  if split == "all":
    return data.source.frame if data.source is not None else pd.concat([data.train, data.val, data.test]).sort_index()
  return getattr(data, split)


def predict_probabilities(model: keras.Model, frame: pd.DataFrame, label_names: list[str],
                          cfg: ml_collections.ConfigDict, source: sources.Source | None = None) -> np.ndarray:
  """Probabilities [N, L] of an inference model, through training's own input pipeline."""
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.data.image_size = int(model.inputs[0].shape[1])  # the size the model was trained at, whatever cfg says
  return np.asarray(training.predict(model, frame, label_names, cfg, source)["probabilities"])


def images_of(frame: pd.DataFrame, rows: np.ndarray, source: sources.Source | None = None) -> list[str | bytes]:
  """What ``plots.image_grid`` shows for ``frame``'s rows at positions ``rows``: file paths, else encoded bytes."""
  if corpus_lib.PATH_COLUMN in frame:
    return list(frame[corpus_lib.PATH_COLUMN].to_numpy()[rows])
  if source is None:
    raise ValueError("the frame has no image paths and no source to read its images from")
  ordered = np.sort(rows)  # sources stream records in stored order
  encoded = dict(zip(ordered, (blob.numpy() for blob in source.images(frame.iloc[ordered]))))
  return [encoded[row] for row in rows]


def _captions(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, names: list[str],
              rows: np.ndarray, ids) -> list[list[tuple[str, str]]]:
  return [[(f"id {ids[i]}", plots.NEUTRAL)] + plots.decision_caption(y_true[i], y_pred[i], names, probs[i])
          for i in rows]


def write_evaluation(output_dir: str, frame: pd.DataFrame, probs: np.ndarray, thresholds: np.ndarray,
                     label_names: list[str], split: str = "test", history_csv: str | None = None,
                     seed: int = 0, source: sources.Source | None = None,
                     implications=()) -> tuple[dict, list[str]]:
  """Evaluates ``probs`` against ``frame``'s labels and writes the report and its figures.

  Decisions are made as the exported model makes them: calibrated
  ``thresholds``, then the label rules ``implications`` (``model_implications``).
  The report adds a 95 % bootstrap interval of micro and macro F1 at the
  calibrated thresholds (``at_calibrated.interval_95``).

  Files: report.md, report.json, pr_curves.png, label_counts.png (predicted vs
  true counts), samples.png (a random sample), false_positives_<label>.png
  (the most confident false positives of the most frequent label),
  no_label.png (images whose label set is empty, where there are any) and
  training_curves.png when ``history_csv`` exists. Images come from the
  frame's paths, else from ``source``.

  Returns:
    (the metrics.evaluate report, the paths written).
  """
  os.makedirs(output_dir, exist_ok=True)
  y_true = frame[label_names].to_numpy().astype(np.int32)
  def rules(decisions: np.ndarray) -> np.ndarray:
    return label_rules.apply_implications(decisions, label_names, implications)

  y_pred = rules(metrics.decide(probs, thresholds))
  result = metrics.evaluate(y_true, probs, thresholds, label_names, decision_rules=rules)
  result["at_calibrated"]["interval_95"] = metrics.bootstrap_f1_interval(y_true, y_pred, seed=seed)
  ids = frame.index.to_numpy()

  def join(name: str) -> str:
    return os.path.join(output_dir, name)

  written = []
  if history_csv and os.path.isfile(history_csv):
    written.append(plots.training_curves(pd.read_csv(history_csv), join("training_curves.png")))
  written.append(plots.pr_curves(y_true, probs, label_names, join("pr_curves.png"), thresholds))
  written.append(plots.predicted_vs_true_counts(
      y_true, y_pred, label_names, join("label_counts.png"),
      f"Images per label, {split} split ({len(frame)} images): true vs predicted at calibrated thresholds"))

  rng = np.random.default_rng(seed)
  sample = np.sort(rng.choice(len(frame), min(GRID_SIZE, len(frame)), replace=False))
  written.append(plots.image_grid(
      images_of(frame, sample, source), _captions(y_true, y_pred, probs, label_names, sample, ids),
      join("samples.png"),
      f"Random {len(sample)} of {len(frame)} {split} images  (✓ right, + false positive, − missed; "
      "numbers: probabilities)"))
  frequent = int(np.argmax(y_true.sum(axis=0)))
  false_positives = np.flatnonzero((y_true[:, frequent] == 0) & (y_pred[:, frequent] == 1))
  if len(false_positives):
    worst = false_positives[np.argsort(-probs[false_positives, frequent], kind="stable")][:GRID_SIZE]
    written.append(plots.image_grid(
        images_of(frame, worst, source), _captions(y_true, y_pred, probs, label_names, worst, ids),
        join(f"false_positives_{label_names[frequent]}.png"),
        f"Most confident false positives of the most frequent label, {label_names[frequent]!r} "
        f"({len(worst)} of {len(false_positives)})"))
  empty = np.flatnonzero(y_true.sum(axis=1) == 0)
  if len(empty):
    shown = np.sort(rng.choice(empty, min(GRID_SIZE, len(empty)), replace=False))
    written.append(plots.image_grid(
        images_of(frame, shown, source), _captions(y_true, y_pred, probs, label_names, shown, ids),
        join("no_label.png"),
        f"Images with no label: random {len(shown)} of {len(empty)} (+ marks what the model predicts anyway)"))

  metrics.write_json(result, join("report.json"))
  figures = "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in written)
  with open(join("report.md"), "w") as f:
    f.write(f"# Evaluation, {split} split\n\n{metrics.format_report(result, split)}\n\n{figures}\n")
  return result, [join("report.md"), join("report.json")] + written
