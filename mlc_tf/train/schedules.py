"""The learning-rate schedule a time budget re-plans: warm-up, then a decay whose end can move.

``optimizers.make_schedule`` makes it from ``config.optimizer``; ``budget.TimeBudget`` moves
its end to where the budget ends, so the decay is planned for the run's length rather than
cut short (Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

DECAYS = ("cosine", "linear")


@keras.saving.register_keras_serializable(package="mlc_tf")
class PlannedDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up from 0 to ``peak``, then cosine or linear decay to ``peak * floor`` at
  ``total_steps``.

  ``plan(total_steps, step)`` moves the end of the decay while training: from
  ``step`` on the rate decays from its value there to the floor at the new
  end, so the curve stays continuous. Without a plan it is Keras'
  ``CosineDecay`` with warm-up (``decay="cosine"``), step for step.

  Args:
    peak: the rate at the end of the warm-up.
    warmup_steps: steps of the linear warm-up.
    total_steps: the step where the decay ends (at least ``warmup_steps + 1``).
    floor: the final rate, as a fraction of ``peak``.
    decay: "cosine" or "linear" (``DECAYS``).
  """

  def __init__(self, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0,
               decay: str = "cosine"):
    if decay not in DECAYS:
      raise ValueError(f"unknown decay {decay!r}; known: {', '.join(DECAYS)}")
    self.peak, self.floor, self.decay = float(peak), float(floor), decay
    self.warmup_steps = int(warmup_steps)
    self.total_steps = max(int(total_steps), int(warmup_steps) + 1)
    # The decay runs from (anchor_step, anchor_rate) to (end_step, peak * floor); plan() moves them.
    self._anchor_step = tf.Variable(float(self.warmup_steps), trainable=False, dtype=tf.float32)
    self._anchor_rate = tf.Variable(self.peak, trainable=False, dtype=tf.float32)
    self._end_step = tf.Variable(float(self.total_steps), trainable=False, dtype=tf.float32)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = self.peak * step / max(self.warmup_steps, 1)
    span = tf.maximum(self._end_step - self._anchor_step, 1.0)
    done = tf.clip_by_value((step - self._anchor_step) / span, 0.0, 1.0)
    shape = 0.5 * (1.0 + tf.cos(math.pi * done)) if self.decay == "cosine" else 1.0 - done
    end_rate = self.peak * self.floor
    decayed = end_rate + (self._anchor_rate - end_rate) * shape
    return tf.where(step < self.warmup_steps, warmup, decayed)

  def plan(self, total_steps: int, step: int) -> None:
    """Ends the decay at ``total_steps``; from ``step`` on (past the warm-up) it starts from the
    rate there."""
    if step > self.warmup_steps:
      rate = float(self(step))
      self._anchor_step.assign(float(step))
      self._anchor_rate.assign(rate)
    self._end_step.assign(float(max(total_steps, step + 1)))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
            "floor": self.floor, "decay": self.decay}
