"""Compares ways of choosing per-label thresholds on a run's saved probabilities: no retraining
(issue 38, lever 4).

  python tools/threshold_rules.py --workdir=workdirs/amd_hour_nocap_s0 \
      --workdir=workdirs/amd_hour_nocap_s1 --data_dir=../shared/datasets/flickr14

Each protocol workdir's network answers its validation and test splits once (cached in
``<workdir>/split_probabilities.npz``); then each rule chooses thresholds on validation photos and
the test split is scored at them (micro-F1, macro-F1; label rules applied as the model serves).
A final fit calibrates on 10 % of the corpus, fewer photos than a protocol run's 15 %: with
``--val_photos=N`` each rule chooses on ``--draws`` random subsets of N validation photos, and the
table shows the mean over draws. Rules:

- ``f1``: each label's F1-optimal threshold (what training does now).
- ``bagged``: the median over ``--bootstrap`` resamples of the validation photos of ``f1``'s
  thresholds: a rare label's threshold rests on more than its few positives' exact scores.
- ``shrunk``: each label's ``f1`` threshold pulled toward the one threshold that maximises
  micro-F1 over all labels, by ``k / (k + positives)`` (``--shrink_k``): a label with few
  positives leans on the shared one.
- ``test-tuned``: ``f1`` chosen on the test split itself, a ceiling no rule can pass.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import json  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mlc_tf import factory, markdown  # noqa: E402
from mlc_tf.cli import common  # noqa: E402
from mlc_tf.evaluate import metrics, reports, scoring  # noqa: E402
from mlc_tf.models import inference  # noqa: E402

_WORKDIRS = flags.DEFINE_multi_string("workdir", None, "A protocol run's workdir; repeatable.",
                                      required=True)
_DATA_DIR = common.define_data_dir_flag()
_VAL_PHOTOS = flags.DEFINE_integer(
    "val_photos", 0, "Choose on random subsets of this many validation photos (0: all of them).")
_DRAWS = flags.DEFINE_integer("draws", 20, "Subsets drawn with --val_photos.")
_BOOTSTRAP = flags.DEFINE_integer("bootstrap", 50, "Resamples of the bagged rule.")
_SHRINK_K = flags.DEFINE_float("shrink_k", 10.0, "The shrunk rule's pseudo-count.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the subsets and resamples.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures as JSON here.")

CACHE_FILE = "split_probabilities.npz"
RULES = ("f1", "bagged", "shrunk", "test-tuned")


def _split_probabilities(workdir: str):
  """(y_val, val_probs, y_test, test_probs, names, implications) of a protocol run."""
  model = inference.load(workdir)
  names, implications = list(inference.decision_layer(model).label_names), \
      inference.implications(model)
  cache = os.path.join(workdir, CACHE_FILE)
  if os.path.isfile(cache):
    arrays = np.load(cache)
    return (*(arrays[k] for k in ("y_val", "val_probs", "y_test", "test_probs")), names,
            implications)
  cfg = factory.load_run_config(os.path.join(workdir, "config.json"))
  parts = scoring.recalibration(model, cfg, common.data_dir(_DATA_DIR.value, cfg.data.source))
  if not len(parts.data.test):
    raise app.UsageError(f"{workdir} has no test split: give a protocol run's workdir")
  answers = {}
  for split in ("val", "test"):
    frame = reports.split_frame(parts.data, split)
    answers[split] = (frame[names].to_numpy(), reports.predict_answers(
        parts.plain, frame, names, cfg, parts.data.source).probabilities)
  np.savez(cache, y_val=answers["val"][0], val_probs=answers["val"][1],
           y_test=answers["test"][0], test_probs=answers["test"][1])
  return (*answers["val"], *answers["test"], names, implications)


def _global_threshold(y: np.ndarray, probs: np.ndarray) -> float:
  """The one threshold over all labels that maximises micro-F1 on ``y``."""
  return float(metrics.f1_optimal_thresholds(y.reshape(-1, 1), probs.reshape(-1, 1))[0])


def choose(rule: str, y: np.ndarray, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Thresholds [L] by ``rule`` from labelled photos ``y`` [N, L] and their ``probs``."""
  if rule in ("f1", "test-tuned"):
    return metrics.f1_optimal_thresholds(y, probs)
  if rule == "bagged":
    rows = rng.integers(0, len(y), (_BOOTSTRAP.value, len(y)))
    return np.median([metrics.f1_optimal_thresholds(y[r], probs[r]) for r in rows], axis=0)
  if rule == "shrunk":
    own, positives = metrics.f1_optimal_thresholds(y, probs), y.sum(axis=0)
    weight = _SHRINK_K.value / (_SHRINK_K.value + positives)
    return (1 - weight) * own + weight * _global_threshold(y, probs)
  raise ValueError(f"unknown rule {rule!r}")


def main(argv):
  del argv
  rng = np.random.default_rng(_SEED.value)
  figures = {}
  for workdir in _WORKDIRS.value:
    y_val, val_probs, y_test, test_probs, names, implications = _split_probabilities(workdir)
    draws = ([np.arange(len(y_val))] if not _VAL_PHOTOS.value else [
        rng.choice(len(y_val), min(_VAL_PHOTOS.value, len(y_val)), replace=False)
        for _ in range(_DRAWS.value)])
    figures[workdir] = {}
    for rule in RULES:
      scores = []
      for rows in draws:
        y, p = (y_test, test_probs) if rule == "test-tuned" else (y_val[rows], val_probs[rows])
        thresholds = choose(rule, y, p, rng)
        decided = metrics.decide(test_probs, thresholds.astype(np.float32), names, implications)
        scores.append(metrics.micro_macro_f1(y_test, decided))
      figures[workdir][rule] = dict(zip(("micro_f1", "macro_f1"), np.mean(scores, axis=0)))
  header = ["rule"] + [f"{os.path.basename(w)}: micro · macro F1" for w in _WORKDIRS.value] + [
      "mean micro · macro F1"]
  rows = []
  for rule in RULES:
    cells = [f"{figures[w][rule]['micro_f1']:.3f} · {figures[w][rule]['macro_f1']:.3f}"
             for w in _WORKDIRS.value]
    mean = [np.mean([figures[w][rule][k] for w in _WORKDIRS.value]) for k in ("micro_f1",
                                                                              "macro_f1")]
    rows.append([rule] + cells + [f"{mean[0]:.3f} · {mean[1]:.3f}"])
  chosen_on = (f"random subsets of {_VAL_PHOTOS.value} validation photos, {_DRAWS.value} draws"
               if _VAL_PHOTOS.value else "all validation photos")
  print(f"thresholds chosen on {chosen_on}; test split scored\n")
  print("\n".join(markdown.table(header, rows, align="l" + "r" * (len(header) - 1))))
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(figures, f, indent=2)


if __name__ == "__main__":
  app.run(main)
