"""Plain convolutional networks: the Flickr study's first and seed CNNs, and a BatchNorm CNN."""

from __future__ import annotations

import keras

from mlc_tf.models import layers
from mlc_tf.models.registry import register


def image_input(image_size: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
  """Returns the model input (float32 pixels in [0, 255]) and its rescaled [0, 1] tensor."""
  inputs = keras.Input((image_size, image_size, 3), name="image")
  return inputs, keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def sigmoid_head(x: keras.KerasTensor, num_labels: int, dropout: float) -> keras.KerasTensor:
  """Adds dropout and one sigmoid unit per label; float32 even under mixed precision."""
  if dropout:
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
  return keras.layers.Dense(num_labels, activation="sigmoid", dtype="float32",
                            name="probabilities")(x)


@register("minimal_cnn")
def minimal_cnn(num_labels: int, image_size: int, *, width: int = 16,
                dropout: float = 0.0) -> keras.Model:
  """Builds the Flickr study's first, highly simplified CNN: one conv3x3-ReLU, a 2x2 max-pool,
  flatten, sigmoid units.

  ``width``: filters of the conv.
  """
  inputs, x = image_input(image_size)
  x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name="conv1")(x)
  x = keras.layers.MaxPooling2D(2, name="pool1")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  return keras.Model(inputs, sigmoid_head(x, num_labels, dropout), name="minimal_cnn")


@register("seed_cnn")
def seed_cnn(num_labels: int, image_size: int, *, width: int = 32, depth: int = 4,
             dropout: float = 0.0) -> keras.Model:
  """Builds the Flickr study's seed CNN: ``depth`` convs, 3x3 kernels shrinking to a 1x1 conv at
  the end.

  Conv ``k`` (1-based) has ``width * 2**((k-1)//2)`` filters; the last is a 1x1
  conv with ``width`` filters that mixes channels cheaply before the head. A 2x2
  max-pool follows each conv of the later half only, so early layers see full
  resolution. Then flatten, dropout and the sigmoid units.

  Args:
    num_labels: sigmoid units, one per label.
    image_size: the side of the square RGB input, in pixels.
    width: the base number of filters (see above).
    depth: number of conv layers, >= 2.
    dropout: the dropout rate before the sigmoid units.

  Returns:
    The model: images in [0, 255] -> probabilities [B, num_labels].

  Raises:
    ValueError: ``depth`` < 2.
  """
  if depth < 2:
    raise ValueError(f"seed_cnn needs depth >= 2 (3x3 convs then a 1x1 conv), got {depth}")
  inputs, x = image_input(image_size)
  for k in range(1, depth + 1):
    last = k == depth
    x = keras.layers.Conv2D(width if last else width * 2**((k - 1) // 2), 1 if last else 3,
                            padding="same", activation="relu", name=f"conv{k}")(x)
    if k > depth // 2 and x.shape[1] >= 2:
      x = keras.layers.MaxPooling2D(2, name=f"pool{k}")(x)
  x = keras.layers.Flatten(name="flatten")(x)
  return keras.Model(inputs, sigmoid_head(x, num_labels, dropout), name="seed_cnn")


@register("simple_cnn")
def simple_cnn(num_labels: int, image_size: int, *, width: int = 32, depth: int = 4,
               dropout: float = 0.0, stem_stride: int = 1) -> keras.Model:
  """Builds ``depth`` blocks of conv3x3-BN-ReLU + max-pool, doubling width, then global pooling.

  Args:
    num_labels: sigmoid units, one per label.
    image_size: the side of the square RGB input, in pixels.
    width: filters of the first block.
    depth: number of blocks.
    dropout: the dropout rate before the sigmoid units.
    stem_stride: 1 or 2: the first conv strides, so the convolutions on a
      128-px input cost what they do on a 64-px one while the first filters
      still see every pixel.

  Returns:
    The model: images in [0, 255] -> probabilities [B, num_labels].

  Raises:
    ValueError: ``stem_stride`` is not 1 or 2.
  """
  if stem_stride not in (1, 2):
    raise ValueError(f"simple_cnn stem_stride must be 1 or 2, got {stem_stride}")
  inputs, x = image_input(image_size)
  for block in range(depth):
    filters = width * 2**block
    x = keras.layers.Conv2D(filters, 3, strides=stem_stride if block == 0 else 1, padding="same",
                            use_bias=False, name=f"conv{block + 1}")(x)
    x = layers.FusedBatchNormalization(name=f"bn{block + 1}")(x)
    x = keras.layers.ReLU(name=f"relu{block + 1}")(x)
    x = keras.layers.MaxPooling2D(2, name=f"pool{block + 1}")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  return keras.Model(inputs, sigmoid_head(x, num_labels, dropout), name="simple_cnn")
