"""A ``keras.applications`` backbone with the sigmoid head, for users who can download ImageNet
weights."""

from __future__ import annotations

import keras

from mlc_tf.models.cnn import sigmoid_head
from mlc_tf.models.registry import register

# Families whose Keras models take [0, 255] pixels and normalise inside the graph,
# like every mlc_tf model (others need a preprocess_input function outside it).
SELF_PREPROCESSING = ("ConvNeXt", "EfficientNet", "MobileNetV3", "RegNet")


@register("keras_app")
def keras_app(num_labels: int, image_size: int, *, backbone: str = "MobileNetV3Small",
              weights: str = "", dropout: float = 0.0) -> keras.Model:
  """Builds ``keras.applications.<backbone>`` without its top, global-average pooled, then the
  sigmoid units.

  Args:
    num_labels: sigmoid units, one per label.
    image_size: the side of the square RGB input, in pixels.
    backbone: e.g. "EfficientNetB0", "MobileNetV3Small".
    weights: "" trains from scratch, as here; "imagenet" needs internet on first use.
    dropout: the dropout rate before the sigmoid units.

  Returns:
    The model: images [B, image_size, image_size, 3] in [0, 255] -> probabilities [B, num_labels].
  """
  if not backbone.startswith(SELF_PREPROCESSING) or not hasattr(keras.applications, backbone):
    raise ValueError(f"backbone {backbone!r} is not a keras.applications model that preprocesses "
                     f"its own [0, 255] input; families supported: {', '.join(SELF_PREPROCESSING)}")
  inputs = keras.Input((image_size, image_size, 3), name="image")
  network = getattr(keras.applications, backbone)(
      include_top=False, weights=weights or None, input_shape=(image_size, image_size, 3),
                                                  pooling="avg")
  x = network(inputs)
  return keras.Model(inputs, sigmoid_head(x, num_labels, dropout), name=f"keras_app_{backbone}")
