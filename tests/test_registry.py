"""One registry for models, losses and optimizers; a choice's knobs are its builder's keyword
defaults."""

import inspect

import pytest

from mlc_tf import factory, registry  # noqa: F401  (factory: every builder registered)
from mlc_tf.train import losses


def test_every_kind_lists_its_builders_and_their_knobs():
  assert "resnet" in registry.names("model")
  assert registry.names("loss") == ["asymmetric", "bce", "focal", "large_loss", "mse",
                                    "weighted_bce"]
  assert registry.names("optimizer") == ["adam", "adamw", "sgd"]
  assert registry.knobs("loss", "asymmetric") == {"gamma_pos": 0.0, "gamma_neg": 4.0,
                                                  "margin": 0.05}
  assert registry.knobs("optimizer", "sgd") == {"momentum": 0.9, "nesterov": False}
  assert registry.knobs("optimizer", "adam") == {}


def test_a_knob_default_is_written_once_in_its_builder():
  """The custom loss class takes its knobs without defaults: the builder's are the only ones."""
  parameters = inspect.signature(losses.AsymmetricLoss).parameters
  knobs = registry.knobs("loss", "asymmetric")
  assert all(parameters[knob].default is inspect.Parameter.empty for knob in knobs)


def test_lookup_and_register_refuse_unknown_and_taken_names():
  with pytest.raises(ValueError, match="unknown loss 'dice'; known: asymmetric, bce"):
    registry.lookup("loss", "dice")
  with pytest.raises(ValueError, match="unknown kind of choice 'metric'"):
    registry.names("metric")
  with pytest.raises(ValueError, match="optimizer 'adam' registered twice"):
    registry.register("optimizer", "adam")(lambda shared: None)
