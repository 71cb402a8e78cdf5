"""A time budget instead of an epoch count: the run measures its speed, plans its length, fits its schedule to it.

``config.train.budget`` ("60m") bounds the wall time of the whole command:
data check, fit, calibration, report and export. ``TimeBudget`` times the
second epoch a process runs (the first traces the step and fills the cache),
plans how many epochs fit before the deadline less what the run still has to
do after fitting, and re-plans ``PlannedDecay`` to end its decay exactly
there: a schedule planned for the budget, not a longer one cut short (Li,
Yumer & Ramanan, "Budgeted Training", ICLR 2020). ``config.train.epochs`` is
the most epochs worth running, so a fast machine stops there. The plan is
written to the workdir, and a resumed run keeps it.

A network can be too slow for its budget on some machines (best.py's holds
40 epochs in an hour on a CPU with AMX, about 12 on one with AVX2 only).
``config.train.fallback`` names a cheaper one: when the budget holds fewer
than ``below_epochs`` epochs of the configured network, as measured a few
steps into its first epoch, the run trains the fallback instead, in the same
workdir and inside the same deadline (``fall_back``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import time

import keras
import ml_collections
import tensorflow as tf

from mlc_tf import atomic_files
from mlc_tf import config as config_lib

PLAN_FILE = "budget_plan.json"
FALLBACK_FILE = "budget_fallback.json"  # the fallback taken, and why: a resumed run trains it again
DECAYS = ("cosine", "linear")
_UNITS = {"h": 3600, "m": 60, "s": 1}
# After the fit: the validation and test splits predicted (calibration, report), model.keras saved, the
# SavedModel exported. Reserved: an epoch's time per training image for each of those images (predicting one
# costs about a third of training on it), plus the saving and export, and never less than a minute. On the
# development CPU best.py spent about 20 s after its fit (docs/results.md).
_SAVE_AND_EXPORT_SECONDS = 30.0
_MIN_RESERVE_SECONDS = 60.0


class BudgetTooSmall(RuntimeError):
  """The budget cannot hold one epoch plus calibration and export, on this machine's measured speed."""


class NetworkTooSlow(RuntimeError):
  """The budget holds fewer epochs of the configured network than ``config.train.fallback.below_epochs``."""

  def __init__(self, projected_epochs: int, below_epochs: int, images_per_second: float):
    super().__init__(f"the budget holds about {projected_epochs} epochs of this network at the "
                     f"{images_per_second:.1f} training images/s measured, fewer than "
                     f"config.train.fallback.below_epochs={below_epochs}")
    self.projected_epochs, self.below_epochs, self.images_per_second = projected_epochs, below_epochs, images_per_second


def with_changes(cfg: ml_collections.ConfigDict, changes: dict) -> ml_collections.ConfigDict:
  """``cfg`` with ``changes`` (nested config sections) merged in, and no further fallback.

  Raises:
    config.ConfigError: ``changes`` names a key ``cfg`` does not have, or gives a value of the wrong type.
  """
  merged = cfg.copy_and_resolve_references()
  merged.lock()
  try:
    merged.update(changes)
  except (AttributeError, KeyError, TypeError) as error:
    raise config_lib.ConfigError(f"config.train.fallback.changes={changes!r} cannot apply to this config: "
                                 f"{error}") from error
  merged.train.fallback.below_epochs = 0
  return merged


def check_fallback(cfg: ml_collections.ConfigDict) -> None:
  """``ConfigError`` where ``config.train.fallback`` could not be applied: said before any data is read."""
  fallback = cfg.train.get("fallback")
  if fallback and fallback.below_epochs:
    with_changes(cfg, fallback.changes.to_dict())


def taken_fallback(workdir: str) -> dict | None:
  """The fallback an earlier call of this run took (``FALLBACK_FILE``), or None."""
  path = os.path.join(workdir, FALLBACK_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def forget(workdir: str) -> None:
  """Removes a finished run's plan and fallback from ``workdir``: a new run there measures and plans afresh."""
  for name in (PLAN_FILE, FALLBACK_FILE):
    if os.path.exists(os.path.join(workdir, name)):
      os.remove(os.path.join(workdir, name))


def fall_back(cfg: ml_collections.ConfigDict, workdir: str, slow: NetworkTooSlow,
              write: bool = True) -> ml_collections.ConfigDict:
  """The fallback's config; the decision is written to the workdir and the slow network's training state cleared.

  The configured network ran a few steps of its first epoch: nothing of it is worth keeping, and its backup
  would resume the wrong network.
  """
  changes = cfg.train.fallback.changes.to_dict()
  fallback = with_changes(cfg, changes)
  decision = {"reason": str(slow), "projected_epochs": slow.projected_epochs, "below_epochs": slow.below_epochs,
              "measured_images_per_second": slow.images_per_second, "changes": changes}
  logging.warning("budget: %s; training config.train.fallback instead: %s", slow, changes)
  if write:
    shutil.rmtree(os.path.join(workdir, "backup"), ignore_errors=True)
    forget(workdir)
    if os.path.exists(os.path.join(workdir, "history.csv")):
      os.remove(os.path.join(workdir, "history.csv"))
    atomic_files.write_aside(os.path.join(workdir, FALLBACK_FILE), lambda staged: _write_json(decision, staged))
  return fallback


def parse_budget(text: str | None) -> float | None:
  """``"60m"``, ``"1h30m"``, ``"90s"``, ``"2h"`` -> seconds; ``""``/None -> None (no budget: train.epochs decides).

  Raises:
    config.ConfigError: not such a duration, or not positive.
  """
  if not text:
    return None
  cleaned = str(text).strip().lower().replace(" ", "")
  parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", cleaned)
  if not parts or "".join(number + unit for number, unit in parts) != cleaned:
    raise config_lib.ConfigError(f"config.train.budget={text!r} is not a duration: write e.g. 60m, 1h30m, 90s")
  seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
  if seconds <= 0:
    raise config_lib.ConfigError(f"config.train.budget={text!r} is not a positive duration")
  return seconds


@keras.saving.register_keras_serializable(package="mlc_tf")
class PlannedDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up from 0 to ``peak``, then cosine or linear decay to ``peak * floor`` at ``total_steps``.

  ``plan(total_steps, step)`` moves the end of the decay while training: from
  ``step`` on the rate decays from its value there to the floor at the new
  end, so the curve stays continuous. Without a plan it is Keras'
  ``CosineDecay`` with warm-up (``decay="cosine"``), step for step.
  """

  def __init__(self, peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0, decay: str = "cosine"):
    if decay not in DECAYS:
      raise ValueError(f"unknown decay {decay!r}; known: {', '.join(DECAYS)}")
    self.peak, self.floor, self.decay = float(peak), float(floor), decay
    self.warmup_steps, self.total_steps = int(warmup_steps), max(int(total_steps), int(warmup_steps) + 1)
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
    """Ends the decay at ``total_steps``; from ``step`` on (past the warm-up) it starts from the rate there."""
    if step > self.warmup_steps:
      rate = float(self(step))
      self._anchor_step.assign(float(step))
      self._anchor_rate.assign(rate)
    self._end_step.assign(float(max(total_steps, step + 1)))

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
            "floor": self.floor, "decay": self.decay}


@dataclasses.dataclass
class Plan:
  """What the budget bought: written to ``PLAN_FILE`` and report.json."""

  budget_seconds: float
  planned_epochs: int
  planned_steps: int
  measured_images_per_second: float   # training images per second of the timed epoch, validation included
  reserved_seconds: float             # kept for calibration, report and export
  anchor_step: int                    # where the schedule was re-planned

  def write(self, path: str) -> None:
    atomic_files.write_aside(path, lambda staged: _write_json(dataclasses.asdict(self), staged))

  @classmethod
  def read(cls, path: str) -> Plan | None:
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return cls(**json.load(f))


def _write_json(value: dict, path: str) -> None:
  with open(path, "w") as f:
    json.dump(value, f, indent=2)


class TimeBudget(keras.callbacks.Callback):
  """Plans the run's length to end before ``deadline`` (``time.time()``), then stops there.

  Before its plan it says, a few steps into the first epoch, when one epoch
  plus the reserve cannot fit (``BudgetTooSmall``). After it, an epoch that
  would end past the reserve stops the run early, with a warning, so
  calibration, report and export still happen. ``schedule``: the learning
  rate to re-plan (None: a constant rate).
  """

  def __init__(self, deadline: float, budget_seconds: float, steps_per_epoch: int, global_batch: int,
               max_epochs: int, plan_path: str, schedule: PlannedDecay | None = None,
               after_fit_images: float = 1.0, write: bool = True, clock=time.time,
               fallback_below_epochs: int = 0, validation_images: float = 0.0):
    super().__init__()
    self.deadline, self.budget_seconds = deadline, budget_seconds
    self.steps_per_epoch, self.global_batch, self.max_epochs = steps_per_epoch, global_batch, max_epochs
    self.plan_path, self.schedule, self.write = plan_path, schedule, write
    self.after_fit_images = after_fit_images  # (validation + test images) / training images: what calibration predicts
    self.validation_images = validation_images  # validation images / training images: each epoch's validation pass
    self.fallback_below_epochs = fallback_below_epochs  # NetworkTooSlow below this many projected epochs (0: never)
    self._network_checked = False
    self._clock = clock
    self.plan: Plan | None = None
    self.stopped_because: str | None = None
    self._epochs_run = 0
    self._epoch_start = self._batch_start = 0.0
    self._epoch_seconds = 0.0
    self._first_batches: list[float] = []

  def reserve(self) -> float:
    """Seconds kept after the fit for calibration, report and export (from the last epoch's time)."""
    return self._reserve_after(self._epoch_seconds)

  def _reserve_after(self, epoch_seconds: float) -> float:
    return max(_MIN_RESERVE_SECONDS, epoch_seconds * self.after_fit_images + _SAVE_AND_EXPORT_SECONDS)

  def on_train_begin(self, logs=None):
    self.plan = Plan.read(self.plan_path)
    if self.plan is not None:
      logging.info("budget: resuming with the plan in %s, %d epochs", self.plan_path, self.plan.planned_epochs)
      if self.schedule is not None:
        self.schedule.plan(self.plan.planned_steps, self.plan.anchor_step)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = self._clock()

  def on_train_batch_begin(self, batch, logs=None):
    if self._epochs_run == 0 and self.plan is None:
      self._batch_start = self._clock()

  def on_train_batch_end(self, batch, logs=None):
    if self._epochs_run or self.plan is not None:
      return
    self._first_batches.append(self._clock() - self._batch_start)
    probe = max(3, self.steps_per_epoch // 20)  # the first batch traces the step; the next ones read and decode
    if len(self._first_batches) == probe + 1 and probe + 1 < self.steps_per_epoch:
      per_batch = sum(self._first_batches[1:]) / probe
      first_epoch_end = self._clock() + per_batch * (self.steps_per_epoch - probe - 1)
      self._check_first_epoch(first_epoch_end,
                              f"is on course to take {_minutes(per_batch * self.steps_per_epoch)} at the speed "
                              f"measured over its first {probe + 1} steps")
      # An epoch: its steps at this speed, and a validation pass (predicting an image costs a third of training).
      self._check_network(per_batch * self.steps_per_epoch * (1 + self.validation_images / 3), first_epoch_end)

  def _check_network(self, epoch_seconds: float, first_epoch_end: float) -> None:
    """``NetworkTooSlow`` where the epochs the budget holds at ``epoch_seconds`` are fewer than the fallback's
    threshold and than ``max_epochs`` (a network that gets all its epochs is not too slow)."""
    if self._network_checked or not self.fallback_below_epochs:
      return
    self._network_checked = True
    affordable = max(0.0, self.deadline - first_epoch_end - self._reserve_after(epoch_seconds))
    projected = 1 + math.floor(affordable / max(epoch_seconds, 1e-9))
    if projected < min(self.fallback_below_epochs, self.max_epochs):
      raise NetworkTooSlow(projected, self.fallback_below_epochs,
                           round(self.steps_per_epoch * self.global_batch / max(epoch_seconds, 1e-9), 1))

  def _check_first_epoch(self, first_epoch_end: float, how_long: str) -> None:
    if first_epoch_end + _MIN_RESERVE_SECONDS > self.deadline:
      needed = first_epoch_end + _MIN_RESERVE_SECONDS - (self.deadline - self.budget_seconds)
      raise BudgetTooSmall(
          f"config.train.budget ({_minutes(self.budget_seconds)}) cannot hold one epoch plus calibration and "
          f"export on this machine: the first epoch alone (decoding every image) {how_long}; give at least "
          f"{_minutes(needed * 1.2)}, or fewer or smaller images")

  def on_epoch_end(self, epoch, logs=None):
    now = self._clock()
    epoch_seconds = self._epoch_seconds = now - self._epoch_start
    self._epochs_run += 1
    finished = epoch + 1
    if self.plan is None and self._epochs_run == 1:  # an epoch too short to probe: said at its end
      self._check_first_epoch(now, f"took {_minutes(epoch_seconds)}")
      self._check_network(epoch_seconds, now)
    if self.plan is None and (self._epochs_run >= 2 or finished >= self.max_epochs):
      self._make_plan(finished, epoch_seconds, now)
    if self.plan is None:
      return
    if finished >= self.plan.planned_epochs:
      self._stop("planned" if self.plan.planned_epochs < self.max_epochs else "max_epochs")
    elif now + epoch_seconds + self.reserve() > self.deadline:
      logging.warning("budget: the machine is slower than planned (epoch %d took %.0f s): stopping after %d of %d "
                      "planned epochs, to leave %.0f s for calibration, report and export", finished, epoch_seconds,
                      finished, self.plan.planned_epochs, self.reserve())
      self._stop("slower than planned")

  def _make_plan(self, finished: int, epoch_seconds: float, now: float) -> None:
    affordable = math.floor(max(0.0, self.deadline - now - self.reserve()) / max(epoch_seconds, 1e-9))
    planned = max(finished, min(self.max_epochs, finished + affordable))
    step = finished * self.steps_per_epoch
    self.plan = Plan(self.budget_seconds, planned, planned * self.steps_per_epoch,
                     round(self.steps_per_epoch * self.global_batch / max(epoch_seconds, 1e-9), 1),
                     round(self.reserve(), 1), step)
    if self.schedule is not None:
      self.schedule.plan(self.plan.planned_steps, step)
    logging.info("budget %s: %d epochs planned (%d steps; at most %d), %.1f images/s measured, %.0f s kept for "
                 "calibration, report and export", _minutes(self.budget_seconds), planned, self.plan.planned_steps,
                 self.max_epochs, self.plan.measured_images_per_second, self.plan.reserved_seconds)
    if self.write:
      self.plan.write(self.plan_path)

  def _stop(self, reason: str) -> None:
    self.stopped_because = reason
    self.model.stop_training = True

  def describe(self) -> dict:
    """For report.json: the plan, and why the fit stopped where it did."""
    return {**(dataclasses.asdict(self.plan) if self.plan else {"budget_seconds": self.budget_seconds}),
            "stopped": self.stopped_because or "early stopping or epochs"}


def _minutes(seconds: float) -> str:
  return f"{seconds / 60:.1f} min"
