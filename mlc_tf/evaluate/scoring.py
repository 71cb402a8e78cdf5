"""Scoring a trained network: its answers on a split, thresholds chosen, the test split scored.

What every trained network goes through before it is saved: a training
run's (``train/training.py``) and an ensemble's (``experiments/ensembles.py``),
so both are thresholded and reported alike. Nothing here fits a model.
"""

from __future__ import annotations

import dataclasses
import logging

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf.data import label_rules, source_base, split_corpus
from mlc_tf.evaluate import metrics, operating_points
from mlc_tf.models import inference


@dataclasses.dataclass
class SplitAnswers:
  """What an inference model answers for the images of one split, in its row order."""

  probabilities: np.ndarray  # [N, L]
  decisions: np.ndarray      # [N, L] 0/1: calibrated thresholds, then the label rules the model has


def predict(model: keras.Model, frame: pd.DataFrame, label_names: list[str],
            cfg: ml_collections.ConfigDict, source: source_base.Source | None = None) -> np.ndarray:
  """Predicts ``frame``'s images (from ``source``, else its paths), in its row order.

  Args:
    model: a network, or an inference model (``inference.build``).
    frame: the images' rows (``mlc_tf.data.corpus`` layout).
    label_names: the labels, in the model's order.
    cfg: the config whose input pipeline (``split_corpus.dataset_of``) reads them.
    source: where the images come from; their paths in ``frame`` when None.

  Returns:
    ``model.predict``'s answer: probabilities [N, L] for a network, the
    outputs dict for an inference model.
  """
  ds = split_corpus.dataset_of(frame, label_names, cfg, training=False,
                               source=source).map(lambda x, y: x)
  return model.predict(ds, verbose=0)


def answer(inference_model: keras.Model, frame: pd.DataFrame, label_names: list[str],
           cfg: ml_collections.ConfigDict,
           source: source_base.Source | None = None) -> SplitAnswers:
  """Returns the inference model's probabilities and decisions for ``frame``'s images, in its order.

  Args:
    inference_model: the ``inference.build`` model (probabilities and decisions outputs).
    frame: the images' rows (``mlc_tf.data.corpus`` layout).
    label_names: the labels, in the model's order.
    cfg: the config whose input pipeline reads the images.
    source: where the images come from; their paths in ``frame`` when None.

  Returns:
    A ``SplitAnswers`` in ``frame``'s row order.
  """
  outputs = predict(inference_model, frame, label_names, cfg, source)
  return SplitAnswers(np.asarray(outputs["probabilities"]), np.asarray(outputs["decisions"]))


@dataclasses.dataclass
class Scored:
  """A network wrapped at thresholds chosen on the validation split, with its answers and its
  report."""

  inference_model: keras.Model
  thresholds: np.ndarray
  val: SplitAnswers
  test: SplitAnswers | None  # None in a final fit
  # the test split's, else (final fit) the validation split's; "split" names it
  report: dict


def wrap_and_score(model: keras.Model, data: split_corpus.SplitCorpus,
                   cfg: ml_collections.ConfigDict, implications: list[tuple[str, str]]) -> Scored:
  """Chooses thresholds on the validation split, wraps the network with them, scores the test split.

  Args:
    model: a network answering probabilities [N, L] for ``data.label_names``.
    data: the split corpus it trained on; its validation split chooses the
      thresholds (``cfg.calibration.policy``).
    implications: the label rules the wrapped model applies after its thresholds.

  Returns:
    The ``inference.build`` model, its thresholds, its answers on the
    validation and test splits and ``metrics.evaluate``'s report of the test
    split (of the validation split when there is none).
  """
  names = data.label_names
  val_probabilities = predict(model, data.val, names, cfg, data.source)
  thresholds = operating_points.choose_thresholds(
      data.val[names].to_numpy(), val_probabilities,
      operating_points.parse_policies(cfg.calibration.policy, names), names).thresholds
  wrapped = inference.build(model, names, thresholds, implications)
  val = SplitAnswers(val_probabilities,
                     metrics.decide(val_probabilities, thresholds, names, implications))
  test = answer(wrapped, data.test, names, cfg, data.source) if len(data.test) else None
  return Scored(wrapped, thresholds, val, test, _report(data, val, test, thresholds, implications))


@dataclasses.dataclass
class Recalibration:
  """A trained inference model taken apart for new operating points, beside its run's split."""

  label_names: list[str]
  thresholds: np.ndarray  # the model's current ones
  implications: list
  data: split_corpus.SplitCorpus
  plain: keras.Model  # the network behind its current thresholds: answers its own probabilities
  train_prior: np.ndarray


def recalibration(model: keras.Model, cfg: ml_collections.ConfigDict,
                  data_dir: str | None) -> Recalibration:
  """Takes ``model`` apart and splits its corpus again as ``cfg`` says, with the model's labels."""
  layer = inference.decision_layer(model)
  names, thresholds = list(layer.label_names), layer.thresholds.numpy()
  cfg.data.labels = names
  data = split_corpus.load_and_split(data_dir, cfg)
  return Recalibration(names, thresholds, inference.implications(model), data,
                       inference.build(inference.network(model), names, thresholds),
                       operating_points.training_prior(data.train[names].to_numpy()))


def adapted_model(network: keras.Model, label_names: list[str], thresholds: np.ndarray,
                  implications: list[tuple[str, str]], stream: operating_points.Stream | None,
                  train_prior: np.ndarray) -> keras.Model:
  """Wraps ``network`` for ``stream``: its prior shift, its tagged gate when it has one, then the
  thresholds chosen for it (none of them without a stream)."""
  gate = stream and stream.gate
  return inference.build(
      network, label_names, thresholds, implications,
      priors=None if stream is None else
      (train_prior, stream.prevalence if gate is None else stream.tagged_prior),
      gate=gate and {"coefficients": gate.coefficients, "bias": gate.bias,
                     "label_frequency": gate.label_frequency,
                     "no_label_share": 1 - gate.tagged_share})


def _split_report(y_true: np.ndarray, answers: SplitAnswers, thresholds: np.ndarray,
                  names: list[str], implications: list[tuple[str, str]]) -> dict:
  """``metrics.evaluate`` of the inference model's answers on one split (its rules also at 0.5)."""
  return metrics.evaluate(
      y_true, answers.probabilities, thresholds, names, decisions=answers.decisions,
      decision_rules=(lambda d: label_rules.apply_implications(d, names, implications))
      if implications else None)


def _report(data: split_corpus.SplitCorpus, val: SplitAnswers, test: SplitAnswers | None,
            thresholds: np.ndarray, implications: list[tuple[str, str]]) -> dict:
  """The test split's report; a final fit (data.test_fraction=0, no test split) scores the
  validation split."""
  names = data.label_names
  if test is None:
    logging.warning(
        "no test split (data.test_fraction=0, a final fit on every labelled image): "
        "report.json scores "
        "the validation split, whose images chose the epoch and the thresholds, "
        "so it is optimistic; "
        "quote figures from runs with a test split")
    return {
        **_split_report(data.val[names].to_numpy(), val, thresholds, names, implications), "split":
            "validation"
    }
  return {
      **_split_report(data.test[names].to_numpy(), test, thresholds, names, implications), "split":
          "test"
  }
