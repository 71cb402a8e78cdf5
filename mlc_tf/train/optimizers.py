"""Optimizers and learning-rate schedules, chosen by name in the config (``config.optimizer``)."""

from __future__ import annotations

import keras
import ml_collections

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "exponential")


def make_schedule(cfg: ml_collections.ConfigDict, steps_per_epoch: int, epochs: int):
  """config.optimizer -> a learning rate: a float, or a Keras schedule stepped per batch.

  ``cosine``: linear warm-up over ``warmup_epochs`` to ``learning_rate``, then
  cosine decay to ``learning_rate * min_lr_fraction`` at the last epoch.
  ``exponential``: multiplied by ``decay_rate`` every epoch (after warm-up, if any).
  """
  schedule = cfg.get("schedule", "constant")
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
  if schedule == "constant":
    return cfg.learning_rate
  steps_per_epoch = max(1, int(steps_per_epoch))
  warmup_steps = int(cfg.get("warmup_epochs", 0) * steps_per_epoch)
  if schedule == "cosine":
    total_steps = max(1, epochs * steps_per_epoch - warmup_steps)
    if warmup_steps:
      return keras.optimizers.schedules.CosineDecay(
          0.0, total_steps, alpha=cfg.get("min_lr_fraction", 0.0),
          warmup_target=cfg.learning_rate, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, total_steps,
                                                  alpha=cfg.get("min_lr_fraction", 0.0))
  return keras.optimizers.schedules.ExponentialDecay(cfg.learning_rate, steps_per_epoch,
                                                     cfg.get("decay_rate", 0.9))


def make_optimizer(cfg: ml_collections.ConfigDict, steps_per_epoch: int = 1,
                   epochs: int = 1) -> keras.optimizers.Optimizer:
  """config.optimizer -> a Keras optimizer with its learning-rate schedule.

  ``steps_per_epoch`` and ``epochs`` size the schedule; a constant rate ignores them.
  """
  learning_rate = make_schedule(cfg, steps_per_epoch, epochs)
  common = {"learning_rate": learning_rate, "clipnorm": cfg.get("clipnorm", None) or None}
  if cfg.name == "sgd":
    return keras.optimizers.SGD(momentum=cfg.get("momentum", 0.9), nesterov=cfg.get("nesterov", False), **common)
  if cfg.name == "adam":
    return keras.optimizers.Adam(**common)
  if cfg.name == "adamw":
    return keras.optimizers.AdamW(weight_decay=cfg.get("weight_decay", 1e-4), **common)
  raise ValueError(f"unknown optimizer {cfg.name!r}; known: {', '.join(OPTIMIZERS)}")
