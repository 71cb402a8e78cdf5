"""Measures what a model decides on a stream of untagged photos, as trained and as mlc-calibrate
adapts it, on photos the adaptation did not see (issue 39).

  python tools/stream_shares.py --model=workdirs/best_s0_30m \
      --data_dir=../shared/datasets/flickr14 --images=../shared/datasets/flickr14-unlabeled/images \
      --corpus_shares=configs/flickr14_stream_prevalence.csv --fit_fraction=0.5 --seed=0

The stream's photos are shuffled (--seed) and split: mlc-calibrate's estimate is fitted on the
first --fit_fraction of them (with the labelled --split photos), then the decisions of the export
it would write are counted on the other photos ("held-out") and on all of them. The decisions are
computed from the network's probabilities with the numpy twins of the exported layers
(``operating_points.Stream.adapt``, ``metrics.decide``; tests/test_untagged.py checks the twins
against the graph). Rows: photos with no label, then each label whose corpus share is at least
--min_share; columns: the corpus share, then per way of adapting the held-out and all-photo shares.
Ways: the model as trained; EM alone (``--prevalence=estimate --noestimate_untagged``, what
mlc-calibrate did before); the PU gate with the tagged part at the training prior
(``--prevalence=estimate``, the default); the PU gate with EM on the tagged part. The labelled
test split's micro P/R/F1 at each way's operating points closes the table. --cache keeps the
network's probabilities (an .npz) so that a rerun with another seed or fraction predicts nothing.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from mlc_tf import factory, markdown  # noqa: E402
from mlc_tf.cli import common  # noqa: E402
from mlc_tf.evaluate import metrics, operating_points, reports, scoring  # noqa: E402
from mlc_tf.models import inference  # noqa: E402
from mlc_tf.serving import prediction  # noqa: E402

_MODEL = flags.DEFINE_string("model", None, "A training workdir or its model.keras.",
                             required=True)
_DATA_DIR = common.define_data_dir_flag()
_IMAGES = flags.DEFINE_list("images", None, "The stream's untagged photos (folders or globs).",
                            required=True)
_CORPUS_SHARES = flags.DEFINE_string(
    "corpus_shares", None, "CSV 'label,prevalence' with a '(none)' row: the shares to compare to.",
    required=True)
_FIT_FRACTION = flags.DEFINE_float("fit_fraction", 0.5, "Share of the stream photos fitted on.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the stream's shuffle (and of the fit's folds).")
_SPLIT = flags.DEFINE_enum("split", "val", reports.SPLITS, "The labelled photos fitted on.")
_POLICY = flags.DEFINE_multi_string("policy", None,
                                    "mlc-calibrate's --policy. Default: the config's.")
_MIN_SHARE = flags.DEFINE_float("min_share", 0.02, "Labels of at least this corpus share are rows.")
_CACHE = flags.DEFINE_string("cache", None,
                             "An .npz of the network's probabilities (written once).")
_MIN_TARGET_IMAGES = flags.DEFINE_integer("min_target_images", 200,
                                          "mlc-calibrate's --min_target_images.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the figures as JSON here.")


def _probabilities(model, cfg, data, names, split):
  """(targets, probabilities) of one labelled split, through training's input pipeline."""
  frame = reports.split_frame(data, split)
  return frame[names].to_numpy(), reports.predict_answers(model, frame, names, cfg,
                                                          data.source).probabilities


def _stream_probabilities(model, paths):
  done, probs = [], []
  for batch_paths, batch_probs, _ in prediction.KerasPredictor(model).predict(paths, 64):
    done += batch_paths
    probs.append(batch_probs)
  return done, np.concatenate(probs)


def main(argv):
  del argv
  started = time.time()
  workdir = _MODEL.value if os.path.isdir(_MODEL.value) else os.path.dirname(_MODEL.value)
  cfg = factory.load_run_config(os.path.join(workdir, "config.json"))
  model = inference.load(_MODEL.value)
  parts = scoring.recalibration(model, cfg, common.data_dir(_DATA_DIR.value, cfg.data.source))
  names, current, implications = parts.label_names, parts.thresholds, parts.implications
  data, train_prior = parts.data, parts.train_prior
  policies = operating_points.parse_policies(_POLICY.value or cfg.calibration.policy, names)
  if _CACHE.value and os.path.isfile(_CACHE.value):
    cached = np.load(_CACHE.value)
    y_fit, fit_probs, y_test, test_probs, stream_probs = (
        cached[key] for key in ("y_fit", "fit_probs", "y_test", "test_probs", "stream_probs"))
  else:
    plain = parts.plain
    y_fit, fit_probs = _probabilities(plain, cfg, data, names, _SPLIT.value)
    y_test, test_probs = _probabilities(plain, cfg, data, names, "test")
    _, stream_probs = _stream_probabilities(plain, prediction.list_images(_IMAGES.value))
    if _CACHE.value:
      np.savez(_CACHE.value, y_fit=y_fit, fit_probs=fit_probs, y_test=y_test,
               test_probs=test_probs, stream_probs=stream_probs)
  predicted = time.time()
  order = np.random.default_rng(_SEED.value).permutation(len(stream_probs))
  fit_rows = order[:int(round(_FIT_FRACTION.value * len(order)))]
  held_rows = order[len(fit_rows):] if len(fit_rows) < len(order) else order
  fit = stream_probs[fit_rows]

  def pu(tagged_em):
    return lambda: operating_points.estimate_stream(
        fit, train_prior, fit_probs, tagged_em=tagged_em, seed=_SEED.value,
        min_stream_photos=_MIN_TARGET_IMAGES.value)

  ways = {
      "as trained": None,
      "EM alone (before)": lambda: operating_points.estimate_stream(
          fit, train_prior, min_stream_photos=_MIN_TARGET_IMAGES.value),
      "PU gate (--prevalence=estimate)": pu(False),
      "PU gate + EM on the tagged part": pu(True),
  }
  read = operating_points.read_prevalence(_CORPUS_SHARES.value, names, train_prior)
  corpus = {**dict(zip(names, read.values)), operating_points.NO_LABEL: read.no_label}
  rows = [operating_points.NO_LABEL] + [n for n in names if corpus[n] >= _MIN_SHARE.value]
  figures = {}
  for way, estimate in ways.items():
    if estimate is None:
      adapt, thresholds, estimated = (lambda p: p), current, None
    else:
      stream = estimate()
      points, _ = operating_points.calibrate(y_fit, fit_probs, policies, names, train_prior,
                                             stream, implications, samples=10, seed=_SEED.value)

      def adapt(p, stream=stream):
        return stream.adapt(p, train_prior)

      thresholds, estimated = points.thresholds, stream.no_label
    shares = {where: operating_points.predicted_shares(
        metrics.decide(adapt(stream_probs[rows_]), thresholds, names, implications), names)
              for where, rows_ in (("held-out", held_rows), ("all", np.arange(len(order))))}
    test = metrics.classification_report(
        y_test, metrics.decide(adapt(test_probs), thresholds, names, implications), names)["micro"]
    within = {where: sum(1 for n in rows[1:] if 1 / 1.5 <= s[n] / corpus[n] <= 1.5)
              for where, s in shares.items()}
    figures[way] = {"shares": shares, "within_1.5x": within, "estimated_no_label": estimated,
                    "test_micro": {k: test[k] for k in ("precision", "recall", "f1")}}
  header = ["share of photos", "corpus"] + [f"{way}: {where}" for way in ways
                                            for where in ("held-out", "all")]
  table = [[name, f"{corpus[name]:.3f}"] + [f"{figures[w]['shares'][where][name]:.3f}"
                                             for w in ways for where in ("held-out", "all")]
           for name in rows]
  table.append(["estimated no-label share (fit half)", ""] + [
      "–" if figures[w]["estimated_no_label"] is None else
      f"{figures[w]['estimated_no_label']:.3f}" for w in ways for _ in range(2)])
  table.append([f"labels within 1.5x of the corpus share (of {len(rows) - 1})", ""] + [
      str(figures[w]["within_1.5x"][where]) for w in ways for where in ("held-out", "all")])
  table.append(["labelled test split, micro P / R / F1", ""] + [
      "{precision:.3f} / {recall:.3f} / {f1:.3f}".format(**figures[w]["test_micro"])
      for w in ways for _ in range(2)])
  print(f"{len(stream_probs)} stream photos: fitted on {len(fit_rows)} (seed {_SEED.value}), "
        f"held-out {len(held_rows)}; labelled {_SPLIT.value} photos {len(y_fit)}, test "
        f"{len(y_test)}; policies {', '.join(_POLICY.value or cfg.calibration.policy)}\n")
  print("\n".join(markdown.table(header, table, align="ll" + "r" * (len(header) - 2))))
  print(f"\nprediction {predicted - started:.0f} s, the rest {time.time() - predicted:.0f} s")
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as f:
      json.dump(figures, f, indent=2)


if __name__ == "__main__":
  app.run(main)
