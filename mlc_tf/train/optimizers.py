"""Optimizers and learning-rate schedules, chosen by name in the config (``config.optimizer``).

The fields every optimizer shares (learning rate, schedule, clipping) are
declared in ``mlc_tf/config.py``; the knobs of one optimizer are its
builder's keyword arguments here (``mlc_tf.registry``), their defaults the only ones.
"""

from __future__ import annotations

from typing import Any

import keras
import ml_collections

from mlc_tf import registry
from mlc_tf.train import schedules

SCHEDULES = ("constant", "cosine", "linear", "exponential")


def make_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, epochs: int):
  """Makes config.optimizer's learning rate: a float, or a Keras schedule stepped per batch.

  ``cosine``, ``linear``: linear warm-up over ``warmup_epochs`` to
  ``learning_rate``, then cosine or linear decay to ``learning_rate *
  min_lr_fraction`` at the last epoch (``schedules.PlannedDecay``, which a time
  budget re-plans to end where the budget does).
  ``exponential``: multiplied by ``decay_rate`` every epoch (after warm-up, if any).
  """
  schedule = cfg.schedule
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
  if schedule == "constant":
    return cfg.learning_rate
  steps_per_epoch = max(1, int(steps_per_epoch))
  warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
  if schedule in schedules.DECAYS:
    return schedules.PlannedDecay(cfg.learning_rate, warmup_steps, epochs * steps_per_epoch,
                                  floor=cfg.min_lr_fraction, decay=schedule)
  return keras.optimizers.schedules.ExponentialDecay(cfg.learning_rate, steps_per_epoch,
                                                     cfg.decay_rate)


def make_optimizer(cfg: ml_collections.ConfigDict, steps_per_epoch: int = 1, epochs: int = 1,
                   learning_rate=None) -> keras.optimizers.Optimizer:
  """Makes the Keras optimizer config.optimizer describes, with its learning-rate schedule.

  ``steps_per_epoch`` and ``epochs`` size the schedule; a constant rate ignores
  them. ``learning_rate``: a schedule already made (``make_schedule``) instead.
  A knob the optimizer does not take is an error naming its knobs.
  """
  values = registry.knob_values("optimizer", cfg)
  if learning_rate is None:
    learning_rate = make_schedule(cfg, steps_per_epoch, epochs)
  common = {"learning_rate": learning_rate, "clipnorm": cfg.clipnorm or None}
  if cfg.get("ema_momentum"):  # Polyak averaging of the weights; training swaps them in to validate
    common.update(use_ema=True, ema_momentum=cfg.ema_momentum)
  return registry.lookup("optimizer", cfg.name)(common, **values)


# Optimizer builders: ``fn(shared, *, knob=default) -> keras.optimizers.Optimizer``; ``shared``: the
# keywords every optimizer takes (learning rate, clipping, weight averaging).

@registry.register("optimizer", "sgd")
def _sgd(shared: dict[str, Any], *, momentum: float = 0.9, nesterov: bool = False):
  return keras.optimizers.SGD(momentum=momentum, nesterov=nesterov, **shared)


@registry.register("optimizer", "adam")
def _adam(shared: dict[str, Any]):
  return keras.optimizers.Adam(**shared)


@registry.register("optimizer", "adamw")
def _adamw(shared: dict[str, Any], *, weight_decay: float = 1e-4):
  return keras.optimizers.AdamW(weight_decay=weight_decay, **shared)
