"""k-fold cross-validation with multi-label (iterative) stratification.

Each fold in turn is the held-out test part; the other folds are split once
more (stratified, ``cfg.data.val_fraction``) into training and the validation
part that calibrates thresholds and stops training early. The result is every
metric's mean ± standard deviation across folds, and out-of-fold predictions:
for every image, the probabilities of the one model that never trained on it
(the input of ``mlc_tf.evaluate.suspects``).
"""

from __future__ import annotations

import dataclasses
import os

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf import atomic_files, markdown
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import split_corpus, stratification
from mlc_tf.evaluate import metrics
from mlc_tf.train import training

OOF_FILE = "oof_predictions.csv"
# The headline metrics of the markdown summary (the JSON has every metric).
HEADLINE = (("mAP", "average_precision/map"),
            ("micro F1 @cal", "at_calibrated/micro/f1"),
            ("macro F1 @cal", "at_calibrated/macro/f1"),
            ("samples F1 @cal", "at_calibrated/samples/f1"),
            ("micro P @cal", "at_calibrated/micro/precision"),
            ("micro R @cal", "at_calibrated/micro/recall"),
            ("exact match @cal", "at_calibrated/exact_match"),
            ("Hamming loss @cal", "at_calibrated/hamming_loss"),
            ("micro F1 @0.5", "at_0.5/micro/f1"), ("macro F1 @0.5", "at_0.5/macro/f1"))


@dataclasses.dataclass
class CrossValidation:
  label_names: list[str]
  fold_reports: list[dict]   # metrics.evaluate of each fold's held-out part
  summary: dict[str, dict]   # metric -> {"mean", "std", "folds": [...]}, over every scalar of the
                             # reports
  oof: pd.DataFrame  # image_id index: fold, path (file sources), given labels,
                     # prob_/pred_/threshold_<label>

  def to_markdown(self) -> str:
    k = len(self.fold_reports)
    headline = [[title, f"{s['mean']:.3f} ± {s['std']:.3f}", *(f"{v:.3f}" for v in s["folds"])]
                for title, s in ((title, self.summary[key]) for title, key in HEADLINE
                                 if key in self.summary)]
    per_label = []
    for name in self.label_names:
      cells = [name, f"{self.summary[f'at_calibrated/per_label/{name}/support']['mean']:.1f}"]
      for key in (f"average_precision/per_label/{name}", f"at_calibrated/per_label/{name}/f1",
                  f"at_0.5/per_label/{name}/f1"):
        s = self.summary.get(key)
        cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "–")
      per_label.append(cells)
    return "\n".join([f"{k}-fold cross-validation, {len(self.oof)} images (mean ± std over folds)",
                      "", *markdown.table(["metric", "mean ± std",
                                           *(f"fold {i + 1}" for i in range(k))], headline),
                      "", *markdown.table(["label", "support/fold", "AP", "F1 @cal", "F1 @0.5"],
                                          per_label)])


def summarize(reports: list[dict]) -> dict[str, dict]:
  """Returns the mean, standard deviation (ddof=0) and per-fold values of every scalar the reports
  share."""
  flats = [metrics.scalar_metrics(report) for report in reports]
  keys = [key for key in flats[0] if all(key in flat for flat in flats)]
  return {key: {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": values}
          for key in keys for values in [[flat[key] for flat in flats]]}


def _out_of_fold_part(held_out: pd.DataFrame, names: list[str], fold: int,
                      result: training.TrainResult) -> pd.DataFrame:
  """The held-out images' rows of the out-of-fold frame: what the fold's inference model answered
  for them."""
  part = held_out[[c for c in (corpus_lib.PATH_COLUMN, *names) if c in held_out]].copy()
  part.insert(0, "fold", fold)
  part[[f"prob_{name}" for name in names]] = result.test.probabilities
  part[[f"pred_{name}" for name in names]] = result.test.decisions
  part[[f"threshold_{name}" for name in names]] = np.broadcast_to(
      result.thresholds, result.test.probabilities.shape)
  return part


def cross_validate(cfg: ml_collections.ConfigDict, data_dir: str, workdir: str, num_folds: int,
                   verbose: int = 1) -> CrossValidation:
  """Trains ``num_folds`` models, each tested on its held-out fold; writes into ``workdir``.

  Args:
    cfg: the runs' config; ``cfg.data.split_seed`` draws the folds.
    data_dir: the corpus (a directory or a source spec; ``None``: ``cfg.data.source``).
    workdir: gets ``fold_<k>/`` (what ``training.train_on`` writes),
      ``cv_report.md``, ``cv_report.json`` and ``oof_predictions.csv``.
    num_folds: how many folds, hence models.
    verbose: 1 shows a progress bar across folds and a line as each fold
      starts, 2 adds each epoch's log line, 0 is silent.

  Returns:
    Each fold's report, their mean ± std and the out-of-fold predictions.
  """
  # The whole corpus, loaded (audited, corrected) exactly as training loads it.
  loaded = split_corpus.load_and_split(data_dir, cfg)
  frame, names = loaded.source.frame, loaded.label_names
  targets = frame[names].to_numpy()
  folds = stratification.kfold(targets, num_folds, cfg.data.split_seed)
  # The additions file's newly tagged photos (load_and_split appends them) train in every fold.
  added = loaded.train.iloc[len(loaded.train) - loaded.additions["joined"]:] if (
      loaded.additions) else loaded.train.iloc[:0]
  os.makedirs(workdir, exist_ok=True)

  progress = keras.utils.Progbar(num_folds, unit_name="fold") if verbose else None
  reports, parts = [], []
  for k, held_out in enumerate(folds):
    rest = np.setdiff1d(np.arange(len(frame)), held_out)
    train, val, _ = stratification.train_val_test_split(targets[rest], cfg.data.val_fraction, 0.0,
                                                        cfg.data.split_seed)
    data = split_corpus.SplitCorpus(names, pd.concat([frame.iloc[rest[train]], added]),
                                    frame.iloc[rest[val]],
                                    frame.iloc[held_out],
                           loaded.audit, loaded.source, additions=loaded.additions)
    if verbose:
      print(f"fold {k + 1}/{num_folds}: training on {len(data.train)} images, validating on "
            f"{len(data.val)}, testing on {len(data.test)}", flush=True)
    result = training.train_on(cfg, data, os.path.join(workdir, f"fold_{k + 1}"),
                               verbose=2 if verbose > 1 else 0)
    reports.append(result.report)
    parts.append(_out_of_fold_part(data.test, names, k + 1, result))
    keras.backend.clear_session()  # each fold builds a fresh model; free the last one's graph
    if progress is not None:
      progress.update(k + 1, [("micro_f1", result.report["at_calibrated"]["micro"]["f1"]),
                              ("macro_f1", result.report["at_calibrated"]["macro"]["f1"])])

  outcome = CrossValidation(names, reports, summarize(reports), pd.concat(parts).sort_index())
  outcome.oof.to_csv(os.path.join(workdir, OOF_FILE))
  atomic_files.write_report(workdir, "cv_report", outcome.to_markdown(), {
      "num_folds": num_folds, "label_names": names, "summary": outcome.summary, "folds": reports})
  return outcome


def read_oof(path: str) -> pd.DataFrame:
  """Reads the out-of-fold predictions an earlier ``cross_validate`` wrote: ``path`` is its
  workdir or the CSV itself.

  Raises:
    FileNotFoundError: no such file (the message says how to make one).
    ValueError: a CSV without an ``image_id`` column.
  """
  if os.path.isdir(path) or not path.endswith(".csv"):
    path = os.path.join(path, OOF_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: run cross-validation (mlc-cv) into "
                            f"{os.path.dirname(path) or '.'} first")
  oof = pd.read_csv(path)
  if "image_id" not in oof:
    raise ValueError(f"{path} has no image_id column: not an {OOF_FILE} that mlc-cv wrote")
  return oof.set_index("image_id")
