"""The model behind the review pages: a workdir's model.keras or an exported SavedModel, asked like
TF Serving.

Both kinds answer an uploaded photo through the ``serving_default`` signature
(the SavedModel's own, or ``export.signature_functions`` of the model.keras):
the bytes go in as they came, so the page shows what TF Serving would answer.
The corpus is predicted once, through ``prediction.load_predictor``'s batches.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf.data import label_rules
from mlc_tf.models import heatmaps, inference
from mlc_tf.serving import export, prediction, signatures


@dataclasses.dataclass
class LabelAnswer:
  """One label of a tagged photo."""

  label: str
  probability: float
  threshold: float
  decided: bool
  # decided only because a label rule implies it (its probability is below its threshold)
  by_rule: bool


@dataclasses.dataclass
class TagAnswer:
  """The serving signature's answer for one photo: ``valid`` false when it is not a decodable
  image."""

  valid: bool
  labels: list[str]  # the decided labels, most probable first
  per_label: list[LabelAnswer]


@dataclasses.dataclass
class Tagger:
  """A loaded model: its labels, calibrated thresholds and label rules, and its serving
  signature."""

  path: str
  label_names: list[str]
  thresholds: np.ndarray
  implications: list[tuple[str, str]]
  # serving_default: image_bytes string [B] -> probabilities, decisions, labels, valid
  serve: Callable[..., dict]
  predictor: prediction.KerasPredictor | prediction.SavedModelPredictor

  def tag(self, image: bytes) -> TagAnswer:
    """Returns what ``serving_default`` answers for one encoded image."""
    try:
      answer = self.serve(image_bytes=tf.constant([image], tf.string))
    # the signature answers valid=False for bad images; this is a guard
    except tf.errors.InvalidArgumentError:
      return TagAnswer(False, [], [])
    out = {key: np.asarray(value) for key, value in answer.items()}
    probabilities, decisions = out["probabilities"][0], out["decisions"][0]
    per_label = [
        LabelAnswer(name, float(p), float(t), bool(d),
                    bool(d) and p < t)
        for name, p, t, d in zip(self.label_names, probabilities, self.thresholds, decisions)
    ]
    return TagAnswer(bool(out["valid"][0]), [name.decode() for name in out["labels"][0] if name],
                     per_label)

  @functools.cached_property
  def grad_cam(self) -> heatmaps.GradCam:
    """Grad-CAM on the model's network, built on first use.

    Raises:
      heatmaps.MissingLayerError: the model has no layers Grad-CAM can use (a SavedModel has none).
    """
    return heatmaps.GradCam(getattr(self.predictor, "model", None))  # a SavedModel's has none

  def predict_corpus(self, frame: pd.DataFrame, batch_size: int = 64) -> pd.DataFrame:
    """Predicts ``prob_<label>`` and ``decided_<label>`` for each image of a label frame (index: its
    image ids).

    Images the model cannot read are absent: the corpus audit has already dropped undecodable ones.
    """
    ids_by_path = dict(zip(frame["path"], frame.index))
    rows, ids = [], []
    for paths, probabilities, decisions in self.predictor.predict(list(frame["path"]), batch_size):
      ids += [ids_by_path[path] for path in paths]
      rows += [np.concatenate([p, d]) for p, d in zip(probabilities, decisions)]
    columns = [f"prob_{name}" for name in self.label_names
              ] + [f"decided_{name}" for name in self.label_names]
    predictions = pd.DataFrame(np.asarray(rows, np.float64).reshape(len(rows), len(columns)),
                               index=pd.Index(ids, name=frame.index.name), columns=columns)
    decided = [f"decided_{name}" for name in self.label_names]
    predictions[decided] = predictions[decided].astype(int)
    return predictions


def _saved_model_rules(config_json: str, label_names: list[str]) -> list[tuple[str, str]]:
  """The label rules of the training config an export carries, when its decisions apply them."""
  try:
    rules = json.loads(config_json).get("rules", {})
  except (json.JSONDecodeError, AttributeError):
    return []
  if not rules.get("to_predictions", True):
    return []
  pairs = label_rules.parse_implications(rules.get("implications", ()))
  return [pair for pair in pairs if set(pair) <= set(label_names)]


def load_tagger(path: str) -> Tagger:
  """Loads a tagger from a workdir or model.keras, a SavedModel version dir, or a TF Serving model
  dir (its highest version)."""
  predictor = prediction.load_predictor(path)
  if isinstance(predictor, prediction.SavedModelPredictor):
    metadata = predictor.loaded.signatures[signatures.METADATA]()
    thresholds = metadata["thresholds"].numpy()
    rules = _saved_model_rules(metadata["config"].numpy().decode(), predictor.label_names)
    serve = predictor.serve
  else:
    thresholds = inference.decision_layer(predictor.model).thresholds.numpy()
    rules = inference.implications(predictor.model)
    serve = export.signature_functions(predictor.model)[signatures.SERVING]
  return Tagger(path, list(predictor.label_names), np.asarray(thresholds, np.float64), rules, serve,
                predictor)
