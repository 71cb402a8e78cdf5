"""A training run's model adapted to the stream its untagged photos come from (issue 39).

The labelled corpus holds only photos with at least one label, so the trained
network answers P(label | photo, tagged). ``config.data.unlabeled`` names photos
of the stream the model will tag, a mixture of tagged and untagged ones. With
``config.calibration.adapt_to_unlabeled``, mlc-train ends as ``mlc-calibrate
--prevalence=estimate`` does on a finished model: the stream's share of photos
with no label and P(tagged | photo) are estimated by positive-unlabelled
learning from the validation photos and the stream
(``mlc_tf.evaluate.untagged``), the gate multiplies the probabilities, and each
label's threshold is chosen for the stream by
``config.calibration.stream_policy``. The fit itself does not change: the
report's test figures stay those of the labelled operating points, and
``report["stream"]`` says what the adapted model expects of the stream and
what it costs on the labelled test photos.
"""

from __future__ import annotations

import logging

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf import config as config_lib
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import split_corpus, unlabeled
from mlc_tf.evaluate import operating_points, scoring, untagged
from mlc_tf.models import inference
from mlc_tf.train import self_training

BOOTSTRAP_SAMPLES = 200  # resamples behind the expected precision/recall intervals


def wanted(cfg: ml_collections.ConfigDict) -> bool:
  """Whether the run adapts its model to the stream of ``cfg.data.unlabeled``."""
  return bool(cfg.data.get("unlabeled")) and bool(cfg.calibration.adapt_to_unlabeled)


def stream_photos(cfg: ml_collections.ConfigDict) -> pd.DataFrame:
  """The stream's audited photos, checked before any training: enough of them to estimate from.

  Raises:
    corpus.CorpusError: the folder cannot be used (``unlabeled.load_unlabeled``).
    config.ConfigError: fewer usable photos than ``cfg.calibration.min_stream_photos``.
  """
  frame, audit = unlabeled.load_unlabeled(cfg.data.unlabeled, seed=cfg.seed,
                                          strict=cfg.data.strict)
  for line in audit.warnings():
    logging.warning("stream photos %s: %s", cfg.data.unlabeled, line)
  if len(frame) < cfg.calibration.min_stream_photos:
    raise config_lib.ConfigError(
        f"config.data.unlabeled={cfg.data.unlabeled} holds {len(frame)} usable photos; the share "
        f"of photos with no label is estimated from at least "
        f"config.calibration.min_stream_photos={cfg.calibration.min_stream_photos} (a share over "
        "fewer is a guess): give more photos, or config.calibration.adapt_to_unlabeled=False to "
        "use them for self-training only")
  return frame


def adapt(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus, photos: pd.DataFrame,
          inference_model: keras.Model, test_probabilities: np.ndarray | None,
          val_probabilities: np.ndarray) -> tuple[keras.Model, dict]:
  """Returns (the inference model adapted to the stream, the report of what it expects there).

  Where the stream shows no sign of untagged photos (``untagged.UntaggedEstimateError``), the
  model is returned unchanged and the report says why.

  Args:
    cfg: the run's config.
    data: the split corpus the network trained on; its labelled training images give the training
      prior, its validation images the labelled side of the PU fit and the thresholds.
    photos: the stream's photos (``stream_photos``).
    inference_model: the trained inference model at its labelled thresholds.
    test_probabilities: the network's probabilities on the test split (None: a final fit).
    val_probabilities: its probabilities on the validation split.
  """
  names = data.label_names
  implications = inference.implications(inference_model)
  labelled_train = data.train[~data.train.index.isin(photos.index)]  # self-training adds photos
  train_prior = operating_points.training_prior(labelled_train[names].to_numpy())
  logging.info("stream: predicting %d photos of %s", len(photos), cfg.data.unlabeled)
  stream_probabilities = self_training.teacher_answers(
      inference_model, photos[corpus_lib.PATH_COLUMN].to_numpy(),
      cfg.train.batch_size)["probabilities"]
  try:
    stream = operating_points.estimate_stream(
        stream_probabilities, train_prior, val_probabilities, seed=cfg.seed,
        min_stream_photos=cfg.calibration.min_stream_photos)
  except untagged.UntaggedEstimateError as error:
    logging.warning("stream %s: the model is not adapted: %s", cfg.data.unlabeled, error)
    return inference_model, {"folder": cfg.data.unlabeled, "adapted": False, "why": str(error)}
  policies = operating_points.parse_policies(cfg.calibration.stream_policy, names)
  current = inference.decision_layer(inference_model).thresholds.numpy()
  points, report = operating_points.calibrate(
      data.val[names].to_numpy(), val_probabilities, policies, names, train_prior, stream,
      implications, test=None if test_probabilities is None else
      (data.test[names].to_numpy(), test_probabilities, current),
      samples=BOOTSTRAP_SAMPLES, seed=cfg.seed)
  logging.info("stream %s: %s", cfg.data.unlabeled, stream.source)
  adapted = scoring.adapted_model(inference.network(inference_model), names, points.thresholds,
                                  implications, stream, train_prior)
  return adapted, {"folder": cfg.data.unlabeled, "adapted": True,
                   "no_label_share": stream.no_label, "calibration": report}
