"""One registry for models, losses and optimizers; a choice's knobs are its builder's keyword defaults."""

import inspect

import pytest

from mlc_tf import models, registry
from mlc_tf.train import losses, optimizers


def test_every_kind_lists_its_builders_and_their_knobs():
  assert "resnet" in registry.names("model") and models.names() == registry.names("model")
  assert losses.names() == ["asymmetric", "bce", "focal", "mse", "weighted_bce"]
  assert optimizers.names() == ["adam", "adamw", "sgd"]
  assert losses.knobs("asymmetric") == {"gamma_pos": 0.0, "gamma_neg": 4.0, "margin": 0.05}
  assert optimizers.knobs("sgd") == {"momentum": 0.9, "nesterov": False} and optimizers.knobs("adam") == {}


def test_a_knob_default_is_written_once_in_its_builder():
  """The custom loss class takes its knobs without defaults: the builder's are the only ones."""
  parameters = inspect.signature(losses.AsymmetricLoss).parameters
  assert all(parameters[knob].default is inspect.Parameter.empty for knob in losses.knobs("asymmetric"))


def test_lookup_and_register_refuse_unknown_and_taken_names():
  with pytest.raises(ValueError, match="unknown loss 'dice'; known: asymmetric, bce"):
    registry.lookup("loss", "dice")
  with pytest.raises(ValueError, match="unknown kind of choice 'metric'"):
    registry.names("metric")
  with pytest.raises(ValueError, match="optimizer 'adam' registered twice"):
    registry.register("optimizer", "adam")(lambda shared: None)
