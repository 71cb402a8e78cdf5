"""Small residual networks (the Flickr study's final design used 8 residual blocks)."""

from __future__ import annotations

import keras

from mlc_tf.models import layers
from mlc_tf.models.cnn import image_input, sigmoid_head
from mlc_tf.models.registry import register


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
  x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"{name}_conv")(x)
  x = layers.FusedBatchNormalization(name=f"{name}_bn")(x)
  return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _squeeze_excite(x, ratio: int, name: str):
  """Channel attention: global pool -> bottleneck -> sigmoid gates multiplying the channels."""
  channels = x.shape[-1]
  s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(x)
  s = keras.layers.Conv2D(max(4, channels // ratio), 1, activation="relu",
                          name=f"{name}_se_reduce")(s)
  s = keras.layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(s)
  return keras.layers.Multiply(name=f"{name}_se")([x, s])


def _basic_block(x, filters: int, stride: int, se_ratio: int, name: str):
  """conv3x3-BN-ReLU, conv3x3-BN (+ squeeze-excite), added to the (projected) input, ReLU."""
  shortcut = x
  if stride != 1 or x.shape[-1] != filters:
    shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj", relu=False)
  y = _conv_bn(x, filters, 3, stride, f"{name}_a")
  y = _conv_bn(y, filters, 3, 1, f"{name}_b", relu=False)
  if se_ratio:
    y = _squeeze_excite(y, se_ratio, name)
  y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
  return keras.layers.ReLU(name=f"{name}_out")(y)


def stage_blocks(blocks: int, stages: int) -> list[int]:
  """Spreads ``blocks`` residual blocks over ``stages`` (earlier stages get the remainder)."""
  if not 1 <= stages <= blocks:
    raise ValueError(f"need 1 <= stages <= blocks, got {stages} stages for {blocks} blocks")
  return [blocks // stages + (1 if s < blocks % stages else 0) for s in range(stages)]


@register("resnet")
def resnet(num_labels: int, image_size: int, *, width: int = 32, blocks: int = 8, stages: int = 4,
           stem_stride: int = 1, se_ratio: int = 0, dropout: float = 0.0) -> keras.Model:
  """Builds a stem conv, then ``blocks`` basic residual blocks in ``stages`` stages doubling
  width, global pooling.

  Each stage after the first halves the resolution.

  Args:
    num_labels: sigmoid units, one per label.
    image_size: the side of the square RGB input, in pixels.
    width: filters of the stem and first stage.
    blocks: basic residual blocks in all (``stage_blocks``).
    stages: stages, each doubling the width of the one before.
    stem_stride: 1, 2, or 4 = stride-2 conv + 2x2 max-pool, the cheap way to
      feed larger images.
    se_ratio: the squeeze-excite bottleneck ratio; 0: none.
    dropout: the dropout rate before the sigmoid units.

  Returns:
    The model: images in [0, 255] -> probabilities [B, num_labels].

  Raises:
    ValueError: ``stem_stride`` is not 1, 2 or 4.
  """
  if stem_stride not in (1, 2, 4):
    raise ValueError(f"resnet stem_stride must be 1, 2 or 4, got {stem_stride}")
  inputs, x = image_input(image_size)
  x = _conv_bn(x, width, 3, min(stem_stride, 2), "stem")
  if stem_stride == 4:
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
  for stage, count in enumerate(stage_blocks(blocks, stages)):
    for block in range(count):
      stride = 2 if (stage > 0 and block == 0) else 1
      x = _basic_block(x, width * 2**stage, stride, se_ratio, f"stage{stage + 1}_block{block + 1}")
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  return keras.Model(inputs, sigmoid_head(x, num_labels, dropout), name="resnet")
