"""The inference model, in one place: built by training, saved as model.keras, loaded by evaluation,
export and prediction, and taken apart here only.

An inference model is the trained network (probabilities [B, L]) wrapped so
that it also answers ``decisions`` at its calibrated per-label thresholds,
after its label rules: ``{"probabilities", "decisions"}``. Its layers are all
in ``mlc_tf.models.layers``, so it loads with ``safe_mode=True``.
"""

from __future__ import annotations

import logging
import os

import keras
import numpy as np

from mlc_tf.models import layers


def build(model: keras.Model, label_names: list[str], thresholds: np.ndarray,
          implications=(), priors: tuple[np.ndarray, np.ndarray] | None = None,
          gate: dict | None = None) -> keras.Model:
  """Wraps a trained model so it also outputs 0/1 decisions at the calibrated thresholds.

  With ``implications`` (``mlc_tf.data.label_rules.parse_implications``), the decisions
  also obey those rules. With ``priors`` (train prior, target prior per label),
  the probabilities are first adapted to the target's label mix
  (``layers.PriorShift``) and ``thresholds`` apply to the adapted ones. With
  ``gate`` (``layers.TaggedGate``'s coefficients, bias, label_frequency and, for the record,
  the estimated no_label_share),
  they are then multiplied by P(tagged | photo), from the network's own
  probabilities.

  Args:
    model: the trained network, image -> probabilities [B, L].
    label_names: the L labels, in the order of the probabilities.
    thresholds: the calibrated threshold of each label.
    implications: the label rules (``a=>b``) the decisions obey; none by default.
    priors: (train prior, target prior) per label, or None for no prior shift.
    gate: ``{"coefficients", "bias", "label_frequency"}`` (and optionally ``"no_label_share"``) of
      a ``TaggedGate``, or None.

  Returns:
    The inference model: image -> {"probabilities", "decisions"}.
  """
  probabilities = network_probabilities = model.outputs[0]
  if priors is not None:
    probabilities = layers.PriorShift(label_names, *priors, name="prior_shift")(probabilities)
  if gate is not None:
    probabilities = layers.TaggedGate(label_names, gate["coefficients"], gate["bias"],
                                      gate["label_frequency"], gate.get("no_label_share"),
                                      name="tagged_gate")([network_probabilities, probabilities])
  decisions = layers.DecisionThresholds(label_names, thresholds, name="decisions")(probabilities)
  if implications:
    decisions = layers.LabelImplications(label_names, implications, name="label_rules")(decisions)
  return keras.Model(model.inputs, {"probabilities": probabilities, "decisions": decisions},
                     name=f"{model.name}_inference")


def with_flip_average(model: keras.Model) -> keras.Model:
  """Wraps ``model`` for test-time augmentation: the mean of its probabilities on the image and on
  its mirror image.

  The trained model is nested unchanged (same weights); the result is a
  functional model with the same input and output shapes, saved and served
  like any other (``layers.HorizontalFlip`` and ``Average`` are built-ins or
  registered). A model that already averages over the mirror image is
  returned as it is: a second average would change nothing and cost twice.
  """
  if any(isinstance(layer, layers.HorizontalFlip) for layer in model.layers):
    return model
  images = keras.Input(shape=model.input_shape[1:], name="image")
  mirrored = layers.HorizontalFlip(name="mirror")(images)
  probabilities = keras.layers.Average(name="flip_average")([model(images), model(mirrored)])
  return keras.Model(images, probabilities, name=model.name)


def ensemble(networks: list[keras.Model], flip_average: bool = False) -> keras.Model:
  """Builds one network whose probabilities are the mean of ``networks``' probabilities: an
  ensemble in one graph.

  Each member is nested unchanged (same weights) as ``member_<k>``, fed the
  same image input; with ``flip_average`` each member first averages over
  the mirror image (``with_flip_average``). The members must take the same
  input size and answer the same number of labels. The result is wrapped by
  ``build`` like any trained network, and costs about the sum of its
  members (twice that with ``flip_average``). One network with
  ``flip_average`` is its test-time flip averaging alone.
  """
  if len(networks) < (1 if flip_average else 2):
    raise ValueError("an ensemble needs at least 2 networks (1 with flip_average), got "
                     f"{len(networks)}")
  if len(networks) == 1:  # test-time augmentation of one network
    return with_flip_average(networks[0])
  first = networks[0]
  for k, net in enumerate(networks[1:], start=2):
    if net.input_shape[1:] != first.input_shape[1:]:
      raise ValueError(f"member {k} takes images of shape {net.input_shape[1:]}, member 1 "
                       f"{first.input_shape[1:]}: ensemble members must be trained at the same "
                       "image size")
    if net.output_shape[-1] != first.output_shape[-1]:
      raise ValueError(f"member {k} answers {net.output_shape[-1]} labels, member 1 "
                       f"{first.output_shape[-1]}: ensemble members must answer the same labels")
  images = keras.Input(shape=first.input_shape[1:], name="image")
  members = []
  for k, net in enumerate(networks, start=1):
    member = with_flip_average(net) if flip_average else net
    # Renamed: the members are often the same architecture under the same name, and nested names
    # must differ.
    members.append(keras.Model(member.inputs, member.outputs[0], name=f"member_{k}")(images))
  return keras.Model(images, keras.layers.Average(name="ensemble_average")(members),
                     name="ensemble")


def load(path: str) -> keras.Model:
  """Loads the model ``training`` saved: a ``.keras`` file, or the workdir that holds
  ``model.keras``."""
  if os.path.isdir(path):
    path = os.path.join(path, "model.keras")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no trained model at {path} (expected a .keras file or a workdir with "
                            "model.keras)")
  return keras.saving.load_model(path, safe_mode=True)


def decision_layer(model: keras.Model) -> layers.DecisionThresholds:
  """Returns the layer that holds the label names and calibrated thresholds of an inference
  model."""
  found = [layer for layer in model.layers if isinstance(layer, layers.DecisionThresholds)]
  if len(found) != 1:
    raise ValueError(f"model {model.name} has {len(found)} DecisionThresholds layers, expected 1: "
                     "is it the inference model that training saves as model.keras?")
  return found[0]


def prior_shift(model: keras.Model) -> layers.PriorShift | None:
  """Returns the layer that adapts an inference model's probabilities to a stream's label mix, or
  None."""
  found = [layer for layer in model.layers if isinstance(layer, layers.PriorShift)]
  return found[0] if found else None


def tagged_gate(model: keras.Model) -> layers.TaggedGate | None:
  """Returns the layer that multiplies an inference model's probabilities by P(tagged | photo), or
  None."""
  found = [layer for layer in model.layers if isinstance(layer, layers.TaggedGate)]
  return found[0] if found else None


def network(model: keras.Model) -> keras.Model:
  """Returns the trained network inside an inference model: image -> probabilities as learnt,
  before any prior shift or tagged gate.

  Shares the inference model's layers and weights; ``build`` wraps it again
  with new thresholds or priors.
  """
  gate, shift = tagged_gate(model), prior_shift(model)
  probabilities = gate.input[0] if gate else (shift or decision_layer(model)).input
  return keras.Model(model.inputs, probabilities, name=model.name.removesuffix("_inference"))


def with_features(model: keras.Model) -> keras.Model:
  """Returns image -> {"probabilities", "features"} of an inference model: what it answers, and the
  network's pooled features (the input of its last Dense layer), for ranking photos by similarity
  (``mlc_tf.evaluate.suggestions``).

  A network that ends otherwise (an ensemble's average, two networks' columns) gives its
  probabilities as its features.
  """
  probabilities = network(model).outputs[0]
  head = probabilities._keras_history.operation
  features = probabilities
  if isinstance(head, keras.layers.Dense) and len(head._inbound_nodes) == 1:
    features = head.input
  else:
    logging.warning("the network does not end in one Dense layer: its probabilities stand for "
                    "its features")
  return keras.Model(model.inputs,
                     {"probabilities": model.output["probabilities"], "features": features})


def implications(model: keras.Model) -> list[tuple[str, str]]:
  """Returns the label rules an inference model applies to its decisions (none when it has no
  rules layer)."""
  return [pair for layer in model.layers if isinstance(layer, layers.LabelImplications)
          for pair in layer.implications]
