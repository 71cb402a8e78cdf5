"""Model builders, chosen by name in the config (``config.model.name``).

Every builder is ``fn(num_labels, image_size, cfg) -> keras.Model``: a
functional model taking float32 images in [0, 255] and ending in one sigmoid
unit per label.
"""

from __future__ import annotations

from typing import Callable

import keras
import ml_collections

from mlc_tf import layers

Builder = Callable[[int, int, ml_collections.ConfigDict], keras.Model]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
  def wrap(fn: Builder) -> Builder:
    if name in _REGISTRY:
      raise ValueError(f"model {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn
  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def build(cfg: ml_collections.ConfigDict, num_labels: int, image_size: int,
          label_names: list[str] | None = None) -> keras.Model:
  """Builds the model ``cfg.name`` (config.model) for ``num_labels`` labels.

  With ``cfg.first_labels`` set, two such networks, one for those labels and
  one for the rest (``two_network``); that needs the ``label_names``.
  """
  if cfg.name not in _REGISTRY:
    raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(names())}")
  if cfg.get("first_labels"):
    if label_names is None or len(label_names) != num_labels:
      raise ValueError("model.first_labels (two networks) needs the label names")
    return two_network.two_network(_REGISTRY[cfg.name], cfg, label_names, image_size)
  return _REGISTRY[cfg.name](num_labels, image_size, cfg)


def with_flip_average(model: keras.Model) -> keras.Model:
  """Test-time augmentation: the mean of the model's probabilities on the image and on its mirror image.

  The trained model is nested unchanged (same weights); the result is a
  functional model with the same input and output shapes, saved and served
  like any other (``layers.HorizontalFlip`` and ``Average`` are built-ins or
  registered).
  """
  images = keras.Input(shape=model.input_shape[1:], name="image")
  mirrored = layers.HorizontalFlip(name="mirror")(images)
  probabilities = keras.layers.Average(name="flip_average")([model(images), model(mirrored)])
  return keras.Model(images, probabilities, name=model.name)


from mlc_tf.models import applications, cnn, resnet, two_network  # noqa: E402,F401  (register their builders)
