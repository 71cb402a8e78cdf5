"""Grad-CAM heat maps: where in a photo a trained network finds one label, as keras.io's "Grad-CAM
class activation visualization" example computes them.

The gradients of one label's score with respect to the network's last
convolution-stage feature map [h, w, C], averaged over the map, weigh its
channels; their weighted sum, rectified and scaled to [0, 1], is the heat map.
It has the feature map's resolution (a 64-px input reaches 4 x 4 in
``simple_cnn`` and 8 x 8 in configs/best.py's ``resnet``, 4 x 4 with its
stride-2 stem), so it shows the region, not the object's outline;
``overlay_png`` stretches it over the photo. A map all zero (all blue) says
nothing in the photo raises the label: the ReLU keeps only what does.
"""

from __future__ import annotations

import io

import keras
import matplotlib
import numpy as np
import tensorflow as tf
from PIL import Image

from mlc_tf.data import pipeline
from mlc_tf.models import inference, layers

COLORMAP = "jet"  # keras.io's example's
OPACITY = 0.4  # of the heat map over the photo, as in keras.io's example
LARGEST_SIDE = 512  # of the PNG: enough for the review page's 384-px view


class MissingLayerError(ValueError):
  """The model lacks what Grad-CAM needs (Keras layers, a convolution, a feature map); the message
  says which."""


def _is_convolution(layer: keras.layers.Layer) -> bool:
  """Tells whether ``layer`` convolves an image: Conv2D and its depthwise/separable kin."""
  return isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                            keras.layers.SeparableConv2D))


def _unwrapped(network: keras.Model) -> keras.Model:
  """The network a flip-averaging wrapper (``inference.with_flip_average``) averages; others as
  they are.

  Its own last 4-D layer is the mirrored input, not a feature map: the heat
  map is the averaged network's on the photo as it is.
  """
  nested = [layer for layer in network.layers if isinstance(layer, keras.Model)]
  if len(nested) == 1 and any(isinstance(layer, layers.HorizontalFlip) for layer in network.layers):
    return nested[0]
  return network


def feature_layer(network: keras.Model) -> keras.layers.Layer:
  """Returns the layer whose output Grad-CAM weighs: the last one with a 4-D (image-shaped) output
  from the network's last convolution on, before its global pooling or flatten.

  Raises:
    MissingLayerError: the network has no convolution layer of its own (a dense-only network, or
      one whose convolutions are nested inside another model: a ``keras_app`` backbone, an
      ensemble, two networks).
  """
  convolutions = [k for k, layer in enumerate(network.layers) if _is_convolution(layer)]
  if not convolutions:
    nested = [layer.name for layer in network.layers if isinstance(layer, keras.Model)]
    raise MissingLayerError(
        f"network {network.name!r} has no convolution layer (Conv2D) of its own, so no feature map "
        "for Grad-CAM" + (f": its convolutions are nested inside {', '.join(nested)}, which "
                          "Grad-CAM does not look into" if nested else ""))
  return [layer for layer in network.layers[convolutions[-1]:] if len(layer.output.shape) == 4][-1]


class GradCam:
  """Grad-CAM for one trained network or inference model; build once, ask per photo and label.

  The score differentiated is the label's logit, the sigmoid head's input
  (``x @ kernel + bias`` of its Dense layer), as keras.io's example drops the
  softmax: the probability's gradient is the logit's times p (1 - p), which
  scales the whole map alike and so leaves the normalised map unchanged, but
  underflows to zero where the network is sure (p near 0 or 1) and the map
  would be blank. A network whose output is no sigmoid Dense (a head of its
  own, a separate sigmoid activation layer) has no logit in reach: its
  probability is used.

  An inference model is explained through the network inside
  (``inference.network``): before its prior shift, which moves a label's logit
  by a constant, and its tagged gate, which scales every label of a photo
  alike; neither says where in the photo a label is.
  """

  def __init__(self, model: keras.Model | None):
    if not isinstance(model, keras.Model):
      raise MissingLayerError(
          "the model is not a Keras model (a SavedModel has no Keras layers), so it has no "
          "convolution layer whose feature map Grad-CAM weighs: give the model.keras (or the "
          "workdir) that training saves")
    if any(isinstance(layer, layers.DecisionThresholds) for layer in model.layers):
      model = inference.network(model)
    network = _unwrapped(model)
    self.layer = feature_layer(network)
    head = network.layers[-1]
    self.uses_logits = (isinstance(head, keras.layers.Dense)
                        and head.activation is keras.activations.sigmoid)
    self._head = head if self.uses_logits else None
    self._model = keras.Model(network.inputs, [
        self.layer.output, head.input if self.uses_logits else network.outputs[0]])
    self.image_size = int(network.inputs[0].shape[1])
    self.num_labels = int(network.outputs[0].shape[-1])

  def heatmap(self, image: np.ndarray | tf.Tensor, label_index: int) -> np.ndarray:
    """Returns the heat map of label ``label_index`` over ``image`` (float32 pixels
    [S, S, 3] in [0, 255], as ``pipeline.decode_and_resize`` gives): [h, w] in [0, 1], the feature
    map's size; all zero where nothing in the photo raises the label."""
    if not 0 <= label_index < self.num_labels:
      raise IndexError(f"label index {label_index} is not one of the network's {self.num_labels}")
    heat = self._heat(tf.convert_to_tensor(image, tf.float32), tf.constant(label_index)).numpy()
    peak = heat.max()
    return heat / peak if peak > 0 else heat

  # A graph: 22 ms a map where eager took 300 (64-px resnet, a busy 2-core CPU).
  @tf.function(reduce_retracing=True)
  def _heat(self, image: tf.Tensor, label_index: tf.Tensor) -> tf.Tensor:
    """The rectified, unscaled heat map [h, w]."""
    with tf.GradientTape() as tape:
      features, scores = self._model(image[tf.newaxis], training=False)
      if self.uses_logits:
        kernel = tf.cast(tf.gather(self._head.kernel, label_index, axis=1), scores.dtype)
        score = tf.linalg.matvec(scores, kernel) + tf.cast(tf.gather(self._head.bias, label_index),
                                                           scores.dtype)
      else:
        score = tf.gather(scores, label_index, axis=1)
    weights = tf.reduce_mean(tf.cast(tape.gradient(score, features), tf.float32), axis=(0, 1, 2))
    return tf.nn.relu(tf.tensordot(tf.cast(features[0], tf.float32), weights, 1))


def overlay_png(photo: Image.Image, heat: np.ndarray) -> bytes:
  """Returns a PNG of ``photo`` (at most ``LARGEST_SIDE`` px a side) with ``heat`` ([h, w] in
  [0, 1]) coloured by ``COLORMAP`` and blended over it.

  The heat map covers the whole photo, stretched as ``decode_and_resize``
  stretched the photo to the network's square input.
  """
  photo = photo.convert("RGB")
  photo.thumbnail((LARGEST_SIDE, LARGEST_SIDE))
  colours = matplotlib.colormaps[COLORMAP](np.clip(heat, 0, 1))[..., :3]
  coloured = Image.fromarray(np.uint8(np.round(colours * 255))).resize(photo.size,
                                                                       Image.Resampling.BILINEAR)
  out = io.BytesIO()
  Image.blend(photo, coloured, OPACITY).save(out, format="PNG")
  return out.getvalue()


@tf.function  # one trace per image size
def _decoded(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
  """``decode_and_resize`` as a graph: run eagerly, a GIF's block walk would be a Python loop."""
  return pipeline.decode_and_resize(image_bytes, image_size)


def photo_heatmap_png(cam: GradCam, image_bytes: bytes, label_index: int) -> bytes:
  """Returns ``overlay_png`` of one encoded photo's heat map for one label.

  The network sees the photo as the model does (``pipeline.decode_and_resize``,
  whose checks run first: no decompression bomb reaches PIL); the heat map
  lies over the photo as it is, its aspect ratio kept.

  Raises:
    tf.errors.InvalidArgumentError: the bytes are no image the model can decode.
  """
  heat = cam.heatmap(_decoded(tf.constant(image_bytes), cam.image_size), label_index)
  with Image.open(io.BytesIO(image_bytes)) as photo:
    photo.draft("RGB", (LARGEST_SIDE, LARGEST_SIDE))  # a JPEG decodes at a fraction of its size
    return overlay_png(photo, heat)
