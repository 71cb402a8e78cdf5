"""The schedule a time budget re-plans: Keras' cosine decay until planned, continuous after it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mlc_tf.train import schedules


def _rates(schedule, steps):
  return np.array([float(schedule(step)) for step in steps])


def test_unplanned_cosine_decay_is_keras_cosine_decay_with_warmup():
  ours = schedules.PlannedDecay(0.1, warmup_steps=10, total_steps=50, floor=0.1)
  keras_schedule = keras.optimizers.schedules.CosineDecay(0.0, 40, alpha=0.1, warmup_target=0.1,
                                                         warmup_steps=10)
  np.testing.assert_allclose(_rates(ours, range(0, 60, 3)), _rates(keras_schedule, range(0, 60, 3)),
                             atol=1e-6)
  no_warmup = keras.optimizers.schedules.CosineDecay(0.1, 50, alpha=0.0)
  np.testing.assert_allclose(_rates(schedules.PlannedDecay(0.1, 0, 50), range(0, 55, 5)),
                             _rates(no_warmup, range(0, 55, 5)), atol=1e-6)


def test_linear_decay_reaches_its_floor_at_the_end():
  schedule = schedules.PlannedDecay(1.0, warmup_steps=0, total_steps=100, floor=0.1, decay="linear")
  np.testing.assert_allclose(_rates(schedule, [0, 50, 100, 150]), [1.0, 0.55, 0.1, 0.1], atol=1e-6)
  with pytest.raises(ValueError, match="unknown decay"):
    schedules.PlannedDecay(1.0, 0, 10, decay="step")


@pytest.mark.parametrize("decay", schedules.DECAYS)
def test_a_plan_moves_the_end_of_the_decay_and_keeps_the_curve_continuous(decay):
  schedule = schedules.PlannedDecay(1.0, warmup_steps=10, total_steps=1000, floor=0.01, decay=decay)
  before = float(schedule(40))
  schedule.plan(total_steps=100, step=40)  # past the warm-up: decays from its rate at step 40
  assert float(schedule(40)) == pytest.approx(before, rel=1e-5)
  assert float(schedule(100)) == pytest.approx(0.01, rel=1e-4)
  assert np.all(np.diff(_rates(schedule, range(40, 101))) <= 1e-7)
  during_warmup = schedules.PlannedDecay(1.0, warmup_steps=10, total_steps=1000, floor=0.0,
                                         decay=decay)
  during_warmup.plan(total_steps=60, step=5)  # in the warm-up: all the decay re-planned
  assert float(during_warmup(10)) == pytest.approx(1.0)
  assert float(during_warmup(60)) == pytest.approx(0.0, abs=1e-6)
