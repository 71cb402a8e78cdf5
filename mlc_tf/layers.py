"""Custom Keras layers that travel inside saved models (registered, serializable, no Lambda)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


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
    return ops.cast(ops.greater_equal(probabilities, ops.cast(self.thresholds, probabilities.dtype)), "int32")

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
