"""Models in the registry (``mlc_tf.registry``, kind ``"model"``): ``register`` and ``build``.

Every builder is ``fn(num_labels, image_size, *, knob=default, ...) -> keras.Model``:
a functional model taking float32 images in [0, 255] and ending in one sigmoid
unit per label. Its keyword arguments are the model's knobs and their defaults
the only defaults (big_vision's way: the config holds ``name`` and the knobs,
fed as ``**config.model``). Builder modules register themselves on import;
importing ``mlc_tf.models`` imports them all.
"""

from __future__ import annotations

import functools
from typing import Callable

import keras
import ml_collections

from mlc_tf import registry as registry_lib
from mlc_tf.models import two_network


def register(name: str) -> Callable[[Callable[..., keras.Model]], Callable[..., keras.Model]]:
  """Returns a decorator registering a model builder as ``name`` (``mlc_tf.registry``, kind
  ``"model"``)."""
  return registry_lib.register("model", name)


def build(cfg: ml_collections.ConfigDict, num_labels: int, image_size: int,
          label_names: list[str] | None = None) -> keras.Model:
  """Builds the model ``cfg.name`` (config.model) for ``num_labels`` labels, with the knobs ``cfg``
  sets.

  A knob the model does not take is an error naming its knobs. The fields of
  config.model that apply to any model are not knobs: with ``cfg.first_labels``
  set, two such networks, one for those labels and one for the rest
  (``two_network``; that needs the ``label_names``); ``flip_average`` is
  training's (``inference.with_flip_average``).
  """
  name = cfg["name"]
  builder = functools.partial(registry_lib.lookup("model", name),
                              **registry_lib.knob_values("model", cfg))
  first_labels = cfg.get("first_labels", ())
  if first_labels:
    if label_names is None or len(label_names) != num_labels:
      raise ValueError("model.first_labels (two networks) needs the label names")
    return two_network.two_network(builder, name, first_labels, label_names, image_size)
  return builder(num_labels, image_size)
