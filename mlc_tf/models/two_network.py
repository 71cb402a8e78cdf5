"""The Flickr study's two-network idea: one network for the over-represented labels, one for the
rest.

Both networks are ``config.model.name`` built with the same knobs, each with
its own sigmoid units; a ``TakeColumns`` layer puts their outputs back into
the corpus's label order, so the result is one functional model with one
output, trained, calibrated and exported like any other.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import numpy as np

from mlc_tf.models.layers import TakeColumns


def two_network(build_one: Callable[[int, int], keras.Model], model_name: str,
                first_labels: Sequence[str], label_names: Sequence[str],
                image_size: int) -> keras.Model:
  """Builds two ``build_one(num_labels, image_size)`` networks (model ``model_name``):
  ``first_labels`` and the rest.

  Args:
    build_one: the model's builder, knobs bound: (num_labels, image_size) -> network.
    model_name: the model's name, for the two networks' names.
    first_labels: the labels of the first network; the second answers the rest.
    label_names: all the labels, in the order of the output.
    image_size: the side of the square RGB input, in pixels.

  Returns:
    One model: image -> probabilities [B, len(label_names)] in ``label_names``' order.

  Raises:
    ValueError: ``first_labels`` names unknown labels, or holds none or all of them.
  """
  label_names = list(label_names)
  first = [name for name in label_names if name in set(first_labels)]
  unknown = sorted(set(first_labels) - set(label_names))
  rest = [name for name in label_names if name not in first]
  if unknown:
    raise ValueError(f"model.first_labels names unknown label(s) {unknown}; labels: {label_names}")
  if not first or not rest:
    raise ValueError(f"model.first_labels must hold some but not all of the labels {label_names}")
  inputs = keras.Input((image_size, image_size, 3), name="image")
  outputs = []
  for group, part in (("first", first), ("rest", rest)):
    net = build_one(len(part), image_size)
    # unique names inside the pair
    net = keras.Model(net.inputs, net.outputs[0], name=f"{model_name}_{group}")
    outputs.append(net(inputs))
  concatenated = keras.layers.Concatenate(name="both_networks")(outputs)
  position = {name: i for i, name in enumerate(first + rest)}
  order = np.array([position[name] for name in label_names])
  probabilities = TakeColumns(order, dtype="float32", name="probabilities")(concatenated)
  return keras.Model(inputs, probabilities, name=f"two_{model_name}")
