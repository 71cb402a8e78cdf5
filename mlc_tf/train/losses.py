"""Multi-label losses, chosen by name in the config (``config.loss.name``).

Every loss takes targets and sigmoid probabilities of shape [B, L] and
averages over labels and the batch. The custom ones are small registered
Keras losses (``get_config`` round-trips), so a compiled model that uses them
saves and loads with ``safe_mode=True``.

``make_loss`` resolves per-label settings given by label name in the config
(e.g. ``fp_weights={"people": 2.0}``) against the corpus's label order, and
can derive positive-class weights from the training split's label frequencies.
"""

from __future__ import annotations

from typing import Sequence

import keras
import ml_collections
import numpy as np
from keras import ops

from mlc_tf import registry

_EPSILON = 1e-7


def _clipped(y_pred):
  return ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON)


@keras.saving.register_keras_serializable(package="mlc_tf")
class WeightedBinaryCrossentropy(keras.losses.Loss):
  """BCE with one weight per label on false negatives (the positive term) and on false positives.

  ``-(fn_w[l] * y * log p + fp_w[l] * (1 - y) * log(1 - p))``, averaged over labels.
  A weight above 1 on a label's false positives makes the network say that
  label less readily; the Flickr study did this for "people", which dominates its corpus.

  Args:
    fn_weights: per label, the weight on false negatives (``fn_w``).
    fp_weights: per label, the weight on false positives (``fp_w``); as many as ``fn_weights``.
    name, reduction, dtype: as for ``keras.losses.Loss``.
  """

  def __init__(self, fn_weights: Sequence[float], fp_weights: Sequence[float],
               name="weighted_bce", reduction="sum_over_batch_size", dtype=None):
    super().__init__(name=name, reduction=reduction, dtype=dtype)
    if len(fn_weights) != len(fp_weights):
      raise ValueError(f"{len(fn_weights)} false-negative weights but {len(fp_weights)} "
                       "false-positive weights")
    self.fn_weights = [float(w) for w in fn_weights]
    self.fp_weights = [float(w) for w in fp_weights]

  def call(self, y_true, y_pred):
    y_true = ops.cast(y_true, y_pred.dtype)
    p = _clipped(y_pred)
    fn_w = ops.convert_to_tensor(self.fn_weights, dtype=y_pred.dtype)
    fp_w = ops.convert_to_tensor(self.fp_weights, dtype=y_pred.dtype)
    per_label = -(fn_w * y_true * ops.log(p) + fp_w * (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(per_label, axis=-1)

  def get_config(self):
    return {**super().get_config(), "fn_weights": self.fn_weights, "fp_weights": self.fp_weights}


@keras.saving.register_keras_serializable(package="mlc_tf")
class AsymmetricLoss(keras.losses.Loss):
  """Asymmetric loss for multi-label imbalance (Ridnik et al., ICCV 2021).

  Positives: ``-(1 - p)^gamma_pos * log p``. Negatives use a shifted
  probability ``p_m = max(p - margin, 0)``: ``-p_m^gamma_neg * log(1 - p_m)``,
  so the many easy negatives (most labels are absent from most images) stop
  dominating the gradient, and very easy ones are discarded entirely.

  Args:
    gamma_pos: the focusing exponent on positives.
    gamma_neg: the focusing exponent on negatives.
    margin: the probability shift of negatives.
    name, reduction, dtype: as for ``keras.losses.Loss``.
  """

  def __init__(self, gamma_pos: float, gamma_neg: float, margin: float, name="asymmetric",
               reduction="sum_over_batch_size", dtype=None):
    super().__init__(name=name, reduction=reduction, dtype=dtype)
    self.gamma_pos = float(gamma_pos)
    self.gamma_neg = float(gamma_neg)
    self.margin = float(margin)

  def call(self, y_true, y_pred):
    y_true = ops.cast(y_true, y_pred.dtype)
    p = _clipped(y_pred)
    p_m = ops.maximum(p - self.margin, 0.0) if self.margin else p
    positive = ops.power(1.0 - p, self.gamma_pos) * ops.log(p)
    negative = ops.power(p_m, self.gamma_neg) * ops.log(ops.clip(1.0 - p_m, _EPSILON, 1.0))
    return -ops.mean(y_true * positive + (1.0 - y_true) * negative, axis=-1)

  def get_config(self):
    return {**super().get_config(), "gamma_pos": self.gamma_pos, "gamma_neg": self.gamma_neg,
            "margin": self.margin}


@keras.saving.register_keras_serializable(package="mlc_tf")
class LargeLossRejection(keras.losses.Loss):
  """BCE that sets aside, in each batch, the negatives of largest loss (Kim et al., CVPR 2022).

  A photo whose annotator left out a label it shows (an untagged dog) is a
  negative the network soon predicts with confidence, so its loss is among the
  batch's largest. The ``reject_fraction`` of the batch's label entries with
  the largest loss, negatives only, leave the loss ("Large Loss Matters",
  LL-R); with ``correct`` they count as positives instead (LL-Ct). The rest is
  plain BCE, averaged over labels; positives are never set aside (a soft
  target, MixUp's or a teacher's, above 0.5 counts as one).

  Args:
    reject_fraction: the share of a batch's [B, L] label entries set aside, in [0, 1).
    correct: count the set-aside negatives as positives instead of dropping them.
    name, reduction, dtype: as for ``keras.losses.Loss``.
  """

  def __init__(self, reject_fraction: float, correct: bool, name="large_loss",
               reduction="sum_over_batch_size", dtype=None):
    super().__init__(name=name, reduction=reduction, dtype=dtype)
    if not 0.0 <= reject_fraction < 1.0:
      raise ValueError(f"reject_fraction must be in [0, 1), got {reject_fraction}")
    self.reject_fraction = float(reject_fraction)
    self.correct = bool(correct)

  def call(self, y_true, y_pred):
    y_true = ops.cast(y_true, y_pred.dtype)
    p = _clipped(y_pred)
    negative_loss = -ops.log(1.0 - p)
    per_entry = -y_true * ops.log(p) + (1.0 - y_true) * negative_loss
    # Entries of largest negative loss: positives rank last (-1), so a batch with fewer negatives
    # than the count sets aside only negatives. The count is a fraction of the batch's entries.
    ranked = ops.reshape(ops.where(y_true > 0.5, -1.0, negative_loss), (-1,))
    count = ops.cast(ops.floor(self.reject_fraction * ops.cast(ops.size(ranked), "float32")),
                     "int32")
    largest = ops.top_k(ranked, ops.maximum(count, 1))[0]
    cut = ops.where(count > 0, largest[-1], np.inf)
    rejected = ops.logical_and(y_true <= 0.5, negative_loss >= ops.stop_gradient(cut))
    if self.correct:
      per_entry = ops.where(rejected, -ops.log(p), per_entry)
    else:
      per_entry = ops.where(rejected, 0.0, per_entry)
    return ops.mean(per_entry, axis=-1)

  def get_config(self):
    return {**super().get_config(), "reject_fraction": self.reject_fraction,
            "correct": self.correct}


def positive_weights(targets: np.ndarray, power: float, max_weight: float = 10.0) -> np.ndarray:
  """Computes per-label weights on positives, ``(negatives / positives) ** power``, capped at
  ``max_weight``.

  ``power=0`` gives all ones; 0.5 is a common compromise between plain BCE and
  fully balanced classes. A label without positives gets weight 1.
  """
  targets = np.asarray(targets, np.float64)
  positives = targets.sum(axis=0)
  negatives = len(targets) - positives
  ratio = np.divide(negatives, positives, out=np.ones_like(positives), where=positives > 0)
  return np.minimum(ratio**power, max_weight).astype(np.float32)


def _per_label(weights_by_name: dict | ml_collections.ConfigDict | None, label_names: list[str],
               what: str) -> np.ndarray:
  """{label: weight} -> a weight per label in ``label_names`` order (1 where not named)."""
  weights = dict(weights_by_name or {})
  unknown = sorted(set(weights) - set(label_names))
  if unknown:
    raise ValueError(f"loss {what} name unknown label(s) {unknown}; labels: {label_names}")
  return np.array([float(weights.get(name, 1.0)) for name in label_names], np.float32)


def make_loss(cfg: ml_collections.ConfigDict, label_names: list[str],
              train_targets: np.ndarray | None = None) -> keras.losses.Loss:
  """Makes the Keras loss config.loss describes, for the labels ``label_names``.

  ``cfg`` holds ``name`` and knobs of that loss (its builder's keywords; a
  knob it does not take is an error naming its knobs). ``train_targets``:
  the training split's, which weighted_bce's ``class_weight_power`` needs.
  """
  values = registry.knob_values("loss", cfg)
  return registry.lookup("loss", cfg.name)(label_names, train_targets, **values)


# Loss builders: ``fn(label_names, train_targets, *, knob=default) -> keras.losses.Loss``.

@registry.register("loss", "bce")
def _bce(label_names, train_targets, *, label_smoothing: float = 0.0):
  """label_smoothing: targets pulled towards 0.5 by this much (against noisy labels)."""
  return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)


@registry.register("loss", "mse")
def _mse(label_names, train_targets):
  return keras.losses.MeanSquaredError()


@registry.register("loss", "focal")
def _focal(label_names, train_targets, *, gamma: float = 2.0, alpha: float = 0.25,
           class_balancing: bool = False, label_smoothing: float = 0.0):
  return keras.losses.BinaryFocalCrossentropy(gamma=gamma, alpha=alpha,
                                              apply_class_balancing=class_balancing,
                                              label_smoothing=label_smoothing)


@registry.register("loss", "asymmetric")
def _asymmetric(label_names, train_targets, *, gamma_pos: float = 0.0, gamma_neg: float = 4.0,
                margin: float = 0.05):
  """margin: the probability shift of negatives."""
  return AsymmetricLoss(gamma_pos, gamma_neg, margin)


@registry.register("loss", "large_loss")
def _large_loss(label_names, train_targets, *, reject_fraction: float = 0.02,
                correct: bool = False):
  """reject_fraction: the share of each batch's label entries, the negatives of largest loss,
  set aside (a label the annotator missed); correct: count them as positives instead."""
  return LargeLossRejection(reject_fraction, correct)


@registry.register("loss", "weighted_bce")
def _weighted_bce(label_names, train_targets, *, fp_weights: dict = {}, fn_weights: dict = {},
                  class_weight_power: float = 0.0):
  """Weights by label name, e.g. ``fp_weights={"people": 2.0}``, 1 where not named.

  ``class_weight_power > 0`` multiplies each label's positive term by
  ``positive_weights(train_targets, power)``, i.e. class weights for a
  multi-label target, which Keras' ``class_weight`` does not support.
  """
  fn = _per_label(fn_weights, label_names, "fn_weights")
  fp = _per_label(fp_weights, label_names, "fp_weights")
  if class_weight_power:
    if train_targets is None:
      raise ValueError("class_weight_power needs the training targets")
    fn = fn * positive_weights(train_targets, class_weight_power)
  return WeightedBinaryCrossentropy(fn.tolist(), fp.tolist())
