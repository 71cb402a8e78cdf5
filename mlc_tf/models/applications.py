"""A ``keras.applications`` backbone with the sigmoid head, for users who can download ImageNet weights."""

from __future__ import annotations

import keras
import ml_collections

from mlc_tf.models.cnn import sigmoid_head
from mlc_tf.models.registry import register

# Families whose Keras models take [0, 255] pixels and normalise inside the graph,
# like every mlc_tf model (others need a preprocess_input function outside it).
SELF_PREPROCESSING = ("ConvNeXt", "EfficientNet", "MobileNetV3", "RegNet")


@register("keras_app")
def keras_app(num_labels: int, image_size: int, cfg: ml_collections.ConfigDict) -> keras.Model:
  """``keras.applications.<backbone>`` without its top, global-average pooled, then the sigmoid units.

  Knobs: backbone (e.g. "EfficientNetB0", "MobileNetV3Small"), weights
  (None: from scratch, as here; "imagenet" needs internet on first use),
  dropout.
  """
  backbone_name = cfg.get("backbone", "MobileNetV3Small")
  if not backbone_name.startswith(SELF_PREPROCESSING) or not hasattr(keras.applications, backbone_name):
    raise ValueError(f"backbone {backbone_name!r} is not a keras.applications model that preprocesses "
                     f"its own [0, 255] input; families supported: {', '.join(SELF_PREPROCESSING)}")
  inputs = keras.Input((image_size, image_size, 3), name="image")
  backbone = getattr(keras.applications, backbone_name)(
      include_top=False, weights=cfg.get("weights", None), input_shape=(image_size, image_size, 3),
      pooling="avg")
  x = backbone(inputs)
  return keras.Model(inputs, sigmoid_head(x, num_labels, cfg.get("dropout", 0.0)), name=f"keras_app_{backbone_name}")
