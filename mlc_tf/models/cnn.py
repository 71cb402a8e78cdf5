"""Plain convolutional networks."""

from __future__ import annotations

import keras
import ml_collections

from mlc_tf.models import register


def image_input(image_size: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
  """The model input (float32 pixels in [0, 255]) and its rescaled [0, 1] tensor."""
  inputs = keras.Input((image_size, image_size, 3), name="image")
  return inputs, keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def sigmoid_head(x: keras.KerasTensor, num_labels: int, dropout: float) -> keras.KerasTensor:
  """Dropout and one sigmoid unit per label; float32 even under mixed precision."""
  if dropout:
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
  return keras.layers.Dense(num_labels, activation="sigmoid", dtype="float32", name="probabilities")(x)


@register("simple_cnn")
def simple_cnn(num_labels: int, image_size: int, cfg: ml_collections.ConfigDict) -> keras.Model:
  """``cfg.depth`` blocks of conv3x3-BN-ReLU + max-pool, doubling width, then global pooling.

  Knobs: width (filters of the first block), depth, dropout.
  """
  inputs, x = image_input(image_size)
  for block in range(cfg.get("depth", 4)):
    filters = cfg.get("width", 32) * 2**block
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block + 1}")(x)
    x = keras.layers.BatchNormalization(name=f"bn{block + 1}")(x)
    x = keras.layers.ReLU(name=f"relu{block + 1}")(x)
    x = keras.layers.MaxPooling2D(2, name=f"pool{block + 1}")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  return keras.Model(inputs, sigmoid_head(x, num_labels, cfg.get("dropout", 0.0)), name="simple_cnn")
