"""Judging a trained model on a corpus split: the numbers (markdown + JSON) and the figures, in one
folder."""

from __future__ import annotations

import os

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf import atomic_files
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import label_rules, source_base, split_corpus
from mlc_tf.evaluate import metrics, plots, scoring

SPLITS = ("train", "val", "test", "all")
GRID_SIZE = 18  # images per sample grid: three rows of six


def split_frame(data: split_corpus.SplitCorpus, split: str) -> pd.DataFrame:
  """Returns one part of a split corpus by name, or all of it (in image id order) for ``"all"``."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
  if split == "all":
    return data.source.frame if data.source is not None else pd.concat(
        [data.train, data.val, data.test]).sort_index()
  frame = getattr(data, split)
  if frame.empty:
    raise ValueError(
        f"the {split} split is empty (a final fit, data.test_fraction=0, has no test split): "
        "evaluate another split, or the run's protocol runs")
  return frame


def predict_answers(model: keras.Model, frame: pd.DataFrame, label_names: list[str],
                    cfg: ml_collections.ConfigDict,
                    source: source_base.Source | None = None) -> scoring.SplitAnswers:
  """Returns an inference model's probabilities and decisions for ``frame``, through training's own
  input pipeline.

  Args:
    model: the inference model; its input size overrides ``cfg.data.image_size``.
    frame: the images' rows (``mlc_tf.data.corpus`` layout).
    label_names: the labels, in the model's order.
    cfg: the training config whose input pipeline reads the images.
    source: where the images come from; their paths in ``frame`` when None.

  Returns:
    A ``scoring.SplitAnswers`` in ``frame``'s row order.
  """
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  # the size the model was trained at, whatever cfg says
  cfg.data.image_size = int(model.inputs[0].shape[1])
  return scoring.answer(model, frame, label_names, cfg, source)


def images_of(frame: pd.DataFrame, rows: np.ndarray,
              source: source_base.Source | None = None) -> list[str | bytes]:
  """Returns what ``plots.image_grid`` shows for ``frame``'s rows at positions ``rows``: file
  paths, else encoded bytes."""
  if corpus_lib.PATH_COLUMN in frame:
    return list(frame[corpus_lib.PATH_COLUMN].to_numpy()[rows])
  if source is None:
    raise ValueError("the frame has no image paths and no source to read its images from")
  ordered = np.sort(rows)  # sources stream records in stored order
  encoded = dict(zip(ordered, (blob.numpy() for blob in source.images(frame.iloc[ordered]))))
  return [encoded[row] for row in rows]


def _captions(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, names: list[str],
              rows: np.ndarray, ids) -> list[list[tuple[str, str]]]:
  return [[(f"id {ids[i]}", plots.NEUTRAL)] +
          plots.decision_caption(y_true[i], y_pred[i], names, probs[i]) for i in rows]


def write_evaluation(
    output_dir: str, frame: pd.DataFrame, answers: scoring.SplitAnswers, thresholds: np.ndarray,
    label_names: list[str], split: str = "test", history_csv: str | None = None, seed: int = 0,
    source: source_base.Source | None = None, implications=()) -> tuple[dict, list[str]]:
  """Evaluates the inference model's ``answers`` against ``frame``'s labels and writes the report
  and its figures.

  The calibrated decisions scored are the model's own (its ``decisions``
  output, as the export serves them); ``thresholds`` and the label rules
  ``implications`` (``inference.implications``) make the reference decisions
  at 0.5. The report adds a 95 % bootstrap interval of micro and macro F1 at
  the calibrated thresholds (``at_calibrated.interval_95``).

  Files: report.md, report.json, pr_curves.png, label_counts.png (predicted vs
  true counts), samples.png (a random sample), false_positives_<label>.png
  (the most confident false positives of the most frequent label),
  no_label.png (images whose label set is empty, where there are any) and
  training_curves.png when ``history_csv`` exists. Images come from the
  frame's paths, else from ``source``.

  Args:
    output_dir: the folder to write into (created if absent).
    frame: the evaluated images' rows, with their 0/1 labels.
    answers: the inference model's answers for ``frame``, in its row order.
    thresholds: the model's calibrated thresholds [L].
    label_names: the labels, in the model's order.
    split: the split's name, for titles and the report.
    history_csv: a training history CSV to plot, if it exists.
    seed: seed of the bootstrap and of the random sample grid.
    source: where the images come from when ``frame`` has no paths.
    implications: the label rules applied to the reference decisions at 0.5.

  Returns:
    (the metrics.evaluate report, the paths written).
  """
  os.makedirs(output_dir, exist_ok=True)
  y_true = frame[label_names].to_numpy().astype(np.int32)
  result = metrics.evaluate(
      y_true, answers.probabilities, thresholds, label_names,
      decisions=answers.decisions, decision_rules=lambda decisions: label_rules.apply_implications(
          decisions, label_names, implications))
  result["at_calibrated"]["interval_95"] = metrics.bootstrap_f1_interval(
      y_true, answers.decisions, seed=seed)
  result["split"] = split  # as training's report.json says which split it scores
  figures = _Figures(output_dir, frame, y_true, answers, label_names, split, source)
  written = []
  if history_csv and os.path.isfile(history_csv):
    written.append(
        plots.training_curves(pd.read_csv(history_csv), figures.path("training_curves.png")))
  written.append(
      plots.pr_curves(y_true, answers.probabilities, label_names, figures.path("pr_curves.png"),
                      thresholds))
  written.append(
      plots.predicted_vs_true_counts(
          y_true, answers.decisions, label_names, figures.path("label_counts.png"),
          f"Images per label, {split} split ({len(frame)} images): "
          "true vs predicted at calibrated thresholds"))
  written += figures.sample_grids(np.random.default_rng(seed))
  _write_report(output_dir, result, split, written)
  return result, [os.path.join(output_dir, "report.md"),
                  os.path.join(output_dir, "report.json")] + written


class _Figures:
  """The image grids of one evaluation: a random sample, confident false positives, images with no
  label."""

  def __init__(self, output_dir: str, frame: pd.DataFrame, y_true: np.ndarray,
               answers: scoring.SplitAnswers, label_names: list[str], split: str,
               source: source_base.Source | None):
    self.output_dir, self.frame, self.y_true, self.answers = output_dir, frame, y_true, answers
    self.label_names, self.split, self.source = label_names, split, source

  def path(self, name: str) -> str:
    return os.path.join(self.output_dir, name)

  def _grid(self, rows: np.ndarray, name: str, title: str) -> str:
    captions = _captions(self.y_true, self.answers.decisions, self.answers.probabilities,
                         self.label_names, rows, self.frame.index.to_numpy())
    return plots.image_grid(images_of(self.frame, rows, self.source), captions, self.path(name),
                            title)

  def sample_grids(self, rng: np.random.Generator) -> list[str]:
    """Writes samples.png, false_positives_<most frequent label>.png and no_label.png, where each
    has images to show."""
    y_true, y_pred, probs, count = (self.y_true, self.answers.decisions,
                                    self.answers.probabilities, len(self.frame))
    sample = np.sort(rng.choice(count, min(GRID_SIZE, count), replace=False))
    written = [
        self._grid(
            sample, "samples.png",
            f"Random {len(sample)} of {count} {self.split} images  (✓ right, + false positive, "
            "− missed; numbers: probabilities)")
    ]
    frequent = int(np.argmax(y_true.sum(axis=0)))
    false_positives = np.flatnonzero((y_true[:, frequent] == 0) & (y_pred[:, frequent] == 1))
    if len(false_positives):
      worst = false_positives[np.argsort(-probs[false_positives, frequent],
                                         kind="stable")][:GRID_SIZE]
      name = self.label_names[frequent]
      written.append(
          self._grid(
              worst, f"false_positives_{name}.png",
              f"Most confident false positives of the most frequent label, {name!r} "
              f"({len(worst)} of {len(false_positives)})"))
    empty = np.flatnonzero(y_true.sum(axis=1) == 0)
    if len(empty):
      shown = np.sort(rng.choice(empty, min(GRID_SIZE, len(empty)), replace=False))
      written.append(
          self._grid(
              shown, "no_label.png", f"Images with no label: random {len(shown)} of {len(empty)} "
              "(+ marks what the model predicts anyway)"))
    return written


def _write_report(output_dir: str, result: dict, split: str, figures: list[str]) -> None:
  """report.json, and report.md: the tables, then the figures."""
  links = "\n".join(f"![{os.path.basename(p)}]({os.path.basename(p)})" for p in figures)
  atomic_files.write_report(
      output_dir, "report",
      f"# Evaluation, {split} split\n\n{metrics.format_report(result, split)}\n\n{links}", result)
