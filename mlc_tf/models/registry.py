"""The model registry: builders by name (``config.model.name``) and ``build``.

Every builder is ``fn(num_labels, image_size, cfg) -> keras.Model``: a
functional model taking float32 images in [0, 255] and ending in one sigmoid
unit per label. Builder modules register themselves on import; importing
``mlc_tf.models`` imports them all.
"""

from __future__ import annotations

from typing import Callable

import keras
import ml_collections

from mlc_tf.models import two_network

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
