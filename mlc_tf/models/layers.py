"""Every custom Keras layer that travels inside a saved model (registered, serializable, no Lambda).

Kept in one module so loading any saved model needs only this import.
"""

from __future__ import annotations

import functools
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mlc_tf import hardware
from mlc_tf.data.label_rules import implication_matrix


@keras.saving.register_keras_serializable(package="mlc_tf")
class DecisionThresholds(keras.layers.Layer):
  """Probabilities [B, L] -> 0/1 int32 decisions with one threshold per label.

  The thresholds are a non-trainable weight, so calibration (``assign``) is
  saved with the model, and the label names are part of the layer's config:
  a saved model knows what its outputs mean.
  """

  def __init__(self, label_names, thresholds=None, **kwargs):
    super().__init__(**kwargs)
    self.label_names = list(label_names)
    initial = np.full(len(self.label_names), 0.5, np.float32) if thresholds is None else thresholds
    self._initial = np.asarray(initial, np.float32).reshape(len(self.label_names))

  def build(self, input_shape):
    self.thresholds = self.add_weight(
        name="thresholds", shape=(len(self.label_names),), trainable=False,
        initializer=keras.initializers.Constant(self._initial))

  def call(self, probabilities):
    return ops.cast(
        ops.greater_equal(probabilities, ops.cast(self.thresholds, probabilities.dtype)), "int32")

  def compute_output_spec(self, probabilities):
    return keras.KerasTensor(probabilities.shape, dtype="int32")

  def get_config(self):
    return {**super().get_config(), "label_names": self.label_names,
            "thresholds": [float(t) for t in self._initial]}


@keras.saving.register_keras_serializable(package="mlc_tf")
class HorizontalFlip(keras.layers.Layer):
  """Images [B, H, W, C] mirrored left-right, always (RandomFlip only flips in training)."""

  def call(self, images):
    return ops.flip(images, axis=-2)


@keras.saving.register_keras_serializable(package="mlc_tf")
class LabelImplications(keras.layers.Layer):
  """0/1 int32 decisions [B, L] -> the same with every implied label switched on.

  One matrix product with the closed implication matrix (a constant of the
  graph, rebuilt from the rules in the config), clipped to 1.
  """

  def __init__(self, label_names, implications, **kwargs):
    super().__init__(**kwargs)
    self.label_names = list(label_names)
    self.implications = [tuple(pair) for pair in implications]
    self._matrix = implication_matrix(self.label_names, self.implications)

  def call(self, decisions):
    implied = ops.matmul(ops.cast(decisions, "float32"), ops.convert_to_tensor(self._matrix))
    return ops.cast(ops.minimum(implied, 1.0), decisions.dtype)

  def compute_output_spec(self, decisions):
    return keras.KerasTensor(decisions.shape, dtype=decisions.dtype)

  def get_config(self):
    return {**super().get_config(), "label_names": self.label_names,
            "implications": [list(pair) for pair in self.implications]}


@keras.saving.register_keras_serializable(package="mlc_tf")
class TakeColumns(keras.layers.Layer):
  """[B, N] -> [B, len(indices)]: the columns ``indices`` of the input, in that order."""

  def __init__(self, indices: Sequence[int], **kwargs):
    super().__init__(**kwargs)
    self.indices = [int(i) for i in indices]

  def call(self, x):
    return ops.take(x, ops.convert_to_tensor(self.indices, dtype="int32"), axis=-1)

  def compute_output_shape(self, input_shape):
    return (*input_shape[:-1], len(self.indices))

  def get_config(self):
    return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package="mlc_tf")
class PriorShift(keras.layers.Layer):
  """Probabilities [B, L] learnt under one label mix -> the same under another (per label, odds
  rescaled).

  Bayes' rule with the class-conditional image distribution held fixed
  (Saerens, Latinne & Decaestecker 2002): p' = p*r / (p*r + (1-p)*s), with
  r = target prior / train prior and s = (1 - target prior) / (1 - train prior).
  Both priors are in the config, so a saved model says what it was adapted to.
  """

  def __init__(self, label_names, train_prior, target_prior, **kwargs):
    super().__init__(**kwargs)
    self.label_names = list(label_names)
    self.train_prior = [float(p) for p in train_prior]
    self.target_prior = [float(p) for p in target_prior]
    for name, priors in (("train_prior", self.train_prior), ("target_prior", self.target_prior)):
      if len(priors) != len(self.label_names) or not all(0 < p < 1 for p in priors):
        raise ValueError(f"{name} needs one value in (0, 1) per label, got {priors}")
    train, target = np.asarray(self.train_prior), np.asarray(self.target_prior)
    self._positive_scale = (target / train).astype(np.float32)
    self._negative_scale = ((1 - target) / (1 - train)).astype(np.float32)

  def call(self, probabilities):
    positive = probabilities * ops.cast(self._positive_scale, probabilities.dtype)
    negative = (1 - probabilities) * ops.cast(self._negative_scale, probabilities.dtype)
    return positive / (positive + negative)

  def compute_output_spec(self, probabilities):
    return keras.KerasTensor(probabilities.shape, dtype=probabilities.dtype)

  def get_config(self):
    return {**super().get_config(), "label_names": self.label_names,
            "train_prior": self.train_prior, "target_prior": self.target_prior}


@keras.saving.register_keras_serializable(package="mlc_tf")
class TaggedGate(keras.layers.Layer):
  """[network probabilities [B, L], probabilities to gate [B, L]] -> the second times
  P(tagged | photo).

  The trained network answers P(label | photo, tagged): it never saw a photo with no label. On a
  stream where some photos carry none, P(label | photo) = P(label | photo, tagged) *
  P(tagged | photo), with P(tagged | photo) = min(1, (1 - c)/c * exp(z)),
  z = coefficients . logit(network probabilities) + bias: positive-unlabelled learning (Elkan &
  Noto 2008; mlc_tf/evaluate/untagged.py fits it). Coefficients, bias and c are in the config,
  with the stream's estimated share of photos with no label, for the record (the export's metadata).
  """

  def __init__(self, label_names, coefficients, bias, label_frequency, no_label_share=None,
               **kwargs):
    super().__init__(**kwargs)
    self.label_names = list(label_names)
    self.coefficients = [float(v) for v in coefficients]
    self.bias, self.label_frequency = float(bias), float(label_frequency)
    self.no_label_share = None if no_label_share is None else float(no_label_share)
    if len(self.coefficients) != len(self.label_names) or not 0 < self.label_frequency < 1:
      raise ValueError("TaggedGate needs one coefficient per label and 0 < label_frequency < 1, "
                       f"got {len(self.coefficients)} and {self.label_frequency}")

  def call(self, inputs):
    network, probabilities = inputs
    clipped = ops.clip(ops.cast(network, "float32"), 1e-6, 1 - 1e-6)
    z = ops.matmul(ops.log(clipped) - ops.log(1 - clipped),  # log, not log1p: tf2onnx lacks Log1p
                   ops.convert_to_tensor(np.asarray(self.coefficients, np.float32)[:, None]))
    odds = np.log((1 - self.label_frequency) / self.label_frequency)
    tagged = ops.exp(ops.minimum(z + (self.bias + odds), 0.0))
    return probabilities * ops.cast(tagged, probabilities.dtype)

  def compute_output_spec(self, inputs):
    return keras.KerasTensor(inputs[1].shape, dtype=inputs[1].dtype)

  def get_config(self):
    return {**super().get_config(), "label_names": self.label_names,
            "coefficients": self.coefficients, "bias": self.bias,
            "label_frequency": self.label_frequency, "no_label_share": self.no_label_share}


@functools.cache
def _fused_bfloat16_runs() -> bool:
  """Whether the fused op takes bfloat16 here: oneDNN has no bfloat16 batch-norm kernel on a CPU
  without native bfloat16 (``FusedBatchNormV3`` aborts, "could not create a primitive descriptor",
  seen with ``ONEDNN_MAX_CPU_ISA=AVX2`` on an AMX CPU); a GPU's cuDNN has one."""
  return bool(tf.config.list_physical_devices("GPU")) or hardware.read_cpu().native_bfloat16


@keras.saving.register_keras_serializable(package="mlc_tf")
class FusedBatchNormalization(keras.layers.BatchNormalization):
  """``keras.layers.BatchNormalization`` through TensorFlow's fused kernel: the same weights,
  statistics and outputs.

  Keras 3 normalizes with separate moments, casts and element-wise ops; on the 2-core CPU they took
  at least half of the ResNet's training step: the fused op (``FusedBatchNormV3``) about doubles its
  training throughput (tools/bench_batch_norm.py). Where the fused op does not apply (another Keras
  backend, inputs not 4-D channels-last, a mask, renorm, synchronized statistics, no scale or
  center) it is the Keras layer.
  """

  def _fusable(self, inputs, mask) -> bool:
    return (keras.backend.backend() == "tensorflow" and mask is None and len(inputs.shape) == 4
            and self.axis in (-1, 3) and not (self.renorm or self.synchronized) and self.scale
            and self.center
            and (self.compute_dtype != "bfloat16" or _fused_bfloat16_runs()))

  def call(self, inputs, training=None, mask=None):
    if not self._fusable(inputs, mask):
      return super().call(inputs, training=training, mask=mask)
    x = tf.cast(inputs, self.compute_dtype)
    gamma, beta = tf.cast(self.gamma, "float32"), tf.cast(self.beta, "float32")
    if not (training and self.trainable):
      return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, mean=self.moving_mean,
                                              variance=self.moving_variance, epsilon=self.epsilon,
                                              is_training=False)[0]
    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                         is_training=True)[:3]
    # The fused op returns the unbiased (n - 1) batch variance; Keras' moving variance averages the
    # biased one.
    count = tf.cast(tf.size(x) // tf.shape(x)[-1], "float32")
    variance = variance * (count - 1.0) / count
    self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(self.moving_variance * self.momentum + variance
                                * (1.0 - self.momentum))
    return y
