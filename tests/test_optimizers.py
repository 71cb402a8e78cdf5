import keras
import numpy as np
import pytest

from mlc_tf import config as config_lib
from mlc_tf.train import optimizers


def _cfg(**fields):
  cfg = config_lib.base_config().optimizer
  cfg.update(fields)
  return cfg


@pytest.mark.parametrize("name,cls",
                         [("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam),
                                      ("adamw", keras.optimizers.AdamW)])
def test_each_optimizer_builds(name, cls):
  optimizer = optimizers.make_optimizer(_cfg(name=name, learning_rate=0.01))
  assert type(optimizer) is cls and float(optimizer.learning_rate) == pytest.approx(0.01)
  if name == "sgd":
    assert optimizer.momentum == pytest.approx(0.9)
  if name == "adamw":
    assert optimizer.weight_decay == pytest.approx(1e-4)


def _rate(schedule, step):
  return float(schedule(step))


def test_cosine_schedule_warms_up_then_decays_to_its_floor():
  schedule = optimizers.make_schedule(_cfg(learning_rate=0.1, schedule="cosine", warmup_epochs=1,
                                           min_lr_fraction=0.1), steps_per_epoch=10, epochs=5)
  assert _rate(schedule, 0) == pytest.approx(0.0, abs=1e-7)
  assert _rate(schedule, 5) == pytest.approx(0.05, rel=1e-4)
  assert _rate(schedule, 10) == pytest.approx(0.1, rel=1e-4)
  assert _rate(schedule, 50) == pytest.approx(0.01, rel=1e-4)
  rates = [_rate(schedule, s) for s in range(10, 51)]
  assert np.all(np.diff(rates) <= 1e-9)


def test_exponential_schedule_decays_per_epoch():
  schedule = optimizers.make_schedule(_cfg(learning_rate=0.1, schedule="exponential",
                                           decay_rate=0.5),
                                      steps_per_epoch=4, epochs=3)
  assert (_rate(schedule, 4) == pytest.approx(0.05, rel=1e-5)
          and _rate(schedule, 8) == pytest.approx(0.025, rel=1e-5))


def test_unknown_names_are_errors():
  with pytest.raises(ValueError, match="unknown optimizer"):
    optimizers.make_optimizer(_cfg(name="rmsprop"))
  with pytest.raises(ValueError, match="schedule"):
    optimizers.make_optimizer(_cfg(schedule="step"))


def test_optimizer_knobs_are_its_own():
  sgd = optimizers.make_optimizer(_cfg(name="sgd", momentum=0.5, nesterov=True))
  assert sgd.momentum == pytest.approx(0.5) and sgd.nesterov
  assert "momentum" not in config_lib.base_config().optimizer  # declared where SGD is chosen
  with pytest.raises(ValueError, match=r"optimizer 'adam' takes no weight_decay; its knobs: none"):
    optimizers.make_optimizer(_cfg(name="adam", weight_decay=0.1))


def test_ema_momentum_turns_on_weight_averaging():
  assert not optimizers.make_optimizer(_cfg(name="adamw")).use_ema
  optimizer = optimizers.make_optimizer(_cfg(name="adamw", ema_momentum=0.999))
  assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(0.999)
