"""A time budget instead of an epoch count: the run measures its speed, plans its length, fits its
schedule to it.

``config.train.budget`` ("60m") bounds the wall time of the whole command:
data check, fit, calibration, report and export. ``Budget``, made once per
command, owns that time: the deadline, the fit's ``TimeBudget`` callback, the
plan and fallback files in the workdir. ``TimeBudget`` times the second
epoch a process runs (the first traces the step and fills the cache), plans
how many epochs fit before the deadline less what the run still has to do
after fitting, and re-plans ``schedules.PlannedDecay`` to end its decay
exactly there: a schedule planned for the budget, not a longer one cut short
(Li, Yumer & Ramanan, "Budgeted Training", ICLR 2020). Where the machine
turns slower later (another job takes the cores), the plan is shortened and
the decay re-planned from the rate reached, so it still ends on time.
``config.train.epochs`` is the most epochs worth running, so a fast machine
stops there. The plan is written to the workdir, and a resumed run keeps it.
Where the budget holds too few epochs of the network, the run trains its
fallback instead (``fallback``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import statistics
import time

import keras
import ml_collections

from mlc_tf import atomic_files
from mlc_tf import config as config_lib
from mlc_tf.data import split_corpus
from mlc_tf.train import callbacks, fallback, schedules

PLAN_FILE = "budget_plan.json"
_UNITS = {"h": 3600, "m": 60, "s": 1}
# After the fit: the validation and test splits predicted (calibration, report), model.keras saved,
# the SavedModel exported. Reserved: an epoch's time per training image for each of those images
# (predicting one costs about a third of training on it), plus the saving and export, and never less
# than a minute. On the development CPU best.py spent about 20 s after its fit (docs/results.md).
_SAVE_AND_EXPORT_SECONDS = 30.0
_MIN_RESERVE_SECONDS = 60.0
_RECENT_EPOCHS = 3  # a late plan is judged on the median of the last epochs, not one slow epoch


class BudgetTooSmall(RuntimeError):
  """The budget cannot hold one epoch plus calibration and export, on this machine's measured
  speed."""


def parse_budget(text: str | None) -> float | None:
  """Parses ``"60m"``, ``"1h30m"``, ``"90s"``, ``"2h"`` into seconds; ``""``/None -> None (no
  budget: train.epochs decides).

  Raises:
    config.ConfigError: not such a duration, or not positive.
  """
  if not text:
    return None
  cleaned = str(text).strip().lower().replace(" ", "")
  parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", cleaned)
  if not parts or "".join(number + unit for number, unit in parts) != cleaned:
    raise config_lib.ConfigError(f"config.train.budget={text!r} is not a duration: write e.g. 60m, "
                                 "1h30m, 90s")
  seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
  if seconds <= 0:
    raise config_lib.ConfigError(f"config.train.budget={text!r} is not a positive duration")
  return seconds


class Budget:
  """The command's time: made once from ``config.train.budget`` and when the command started.

  It knows the deadline, makes each fit's ``TimeBudget``, turns a network too
  slow for it into its fallback, and keeps the plan and fallback files of the
  workdir. A budget is one process (``multi_worker`` is refused), so it writes
  them itself.
  """

  def __init__(self, seconds: float, started: float, workdir: str):
    self.seconds, self.deadline, self.workdir = seconds, started + seconds, workdir
    self.plan_path = os.path.join(workdir, PLAN_FILE)
    self.fallback_taken: dict | None = None  # the fallback this run trains, and why (report.json)
    self.stream_photos = 0  # untagged photos predicted after the fit (train/stream_adaptation.py)

  @classmethod
  def of(cls, cfg: ml_collections.ConfigDict, workdir: str, started: float) -> Budget | None:
    """Makes the budget of ``cfg.train.budget`` counted from ``started`` (``time.time()``); None
    without one.

    Raises:
      config.ConfigError: the budget or its fallback cannot be used (said before any data is read).
    """
    seconds = parse_budget(cfg.train.get("budget"))
    if not seconds:
      return None
    if cfg.strategy == "multi_worker":
      raise config_lib.ConfigError(
          "config.train.budget needs one process: the workers of a multi-worker job would each "
          "plan their own length; give config.train.epochs instead")
    fallback.check(cfg)
    return cls(seconds, started, workdir)

  def config_to_train(self, cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Returns ``cfg``, or the fallback this run took before it was interrupted: a resumed run
    trains it again. A new run (nothing backed up) forgets the plan and fallback a finished run
    left in the workdir: it measures and plans afresh.
    """
    backup = callbacks.AtomicBackupAndRestore(os.path.join(self.workdir, "backup"), write=False)
    if backup.backed_up_epoch() is None:
      self._forget()
      return cfg
    self.fallback_taken = fallback.taken(self.workdir)
    if self.fallback_taken is None:
      return cfg
    logging.info("budget: this run fell back (%s): training config.train.fallback",
                 self.fallback_taken["reason"])
    return fallback.with_changes(cfg, self.fallback_taken["changes"])

  def time_budget(self, cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus,
                  steps_per_epoch: int, global_batch: int, learning_rate,
                  resumed: bool) -> TimeBudget:
    """Makes the fit's callback; ``learning_rate`` is re-planned where it is a ``PlannedDecay``.

    A resumed fit (``resumed``) never falls back: it has epochs of its network to lose.

    Args:
      cfg: the run's config (``train.epochs``, ``train.fallback.below_epochs``).
      data: the split corpus; its split sizes size the reserve and the validation passes.
      steps_per_epoch: optimizer steps per epoch.
      global_batch: images per optimizer step across the cluster.
      learning_rate: the optimizer's learning rate: a float or a schedule.
      resumed: whether the fit resumes from a backup.

    Returns:
      The ``TimeBudget`` callback of the fit.
    """
    train_images = max(len(data.train), 1)
    return TimeBudget(
        self.deadline, self.seconds, steps_per_epoch, global_batch, cfg.train.epochs,
        self.plan_path,
        learning_rate if isinstance(learning_rate, schedules.PlannedDecay) else None,
        after_fit_images=(len(data.val) + len(data.test) + self.stream_photos) / train_images,
        fallback_below_epochs=0 if resumed else cfg.train.fallback.below_epochs,
        validation_images=len(data.val) / train_images)

  def fall_back(self, cfg: ml_collections.ConfigDict,
                slow: fallback.NetworkTooSlow) -> ml_collections.ConfigDict:
    """Returns the config to train instead of ``cfg``'s too slow network; the workdir says so
    (``fallback.fall_back``)."""
    self._forget()
    fallback_cfg, self.fallback_taken = fallback.fall_back(cfg, self.workdir, slow)
    return fallback_cfg

  def describe(self, time_budget: TimeBudget) -> dict:
    """Describes, for report.json, the fit's plan and why it stopped, and the fallback taken, if
    any."""
    taken = {"fallback": self.fallback_taken} if self.fallback_taken else {}
    return {**time_budget.describe(), **taken}

  def _forget(self) -> None:
    for path in (self.plan_path, os.path.join(self.workdir, fallback.FALLBACK_FILE)):
      if os.path.exists(path):
        os.remove(path)


@dataclasses.dataclass
class Plan:
  """What the budget bought: written to ``PLAN_FILE`` and report.json."""

  budget_seconds: float
  planned_epochs: int
  planned_steps: int
  measured_images_per_second: float   # training images per second of the timed epoch, validation
                                      # included
  reserved_seconds: float             # kept for calibration, report and export
  anchor_step: int                    # where the schedule was re-planned
  # times the machine turned out slower and the plan was shortened, the decay re-planned to end
  # at the new length
  shortened: int = 0

  def write(self, path: str) -> None:
    """Writes the plan to ``path`` as JSON, atomically."""
    atomic_files.write_json(path, dataclasses.asdict(self))

  @classmethod
  def read(cls, path: str) -> Plan | None:
    """Reads the plan written to ``path``; None where there is none."""
    if not os.path.exists(path):
      return None
    with open(path) as f:
      return cls(**json.load(f))


class TimeBudget(keras.callbacks.Callback):
  """Plans the run's length to end before ``deadline`` (``time.time()``), then stops there.

  Before its plan it says, a few steps into the first epoch, when one epoch
  plus the reserve cannot fit (``BudgetTooSmall``). After it, an epoch that
  would end past the reserve stops the run early, with a warning, so
  calibration, report and export still happen.

  Args:
    deadline: when the command must end (``time.time()``).
    budget_seconds: the whole command's budget, in seconds.
    steps_per_epoch: optimizer steps per epoch.
    global_batch: images per optimizer step across the cluster.
    max_epochs: the most epochs worth running (``config.train.epochs``).
    plan_path: where the plan is written, and read back on a resume.
    schedule: the learning rate to re-plan (None: a constant rate).
    after_fit_images: (validation + test images) / training images: what
      calibration predicts after the fit.
    clock: the time function (``time.time``; tests pass their own).
    fallback_below_epochs: raise ``fallback.NetworkTooSlow`` below this many
      projected epochs (0: never).
    validation_images: validation images / training images: each epoch's
      validation pass.
  """

  def __init__(self, deadline: float, budget_seconds: float, steps_per_epoch: int,
               global_batch: int, max_epochs: int, plan_path: str,
               schedule: schedules.PlannedDecay | None = None, after_fit_images: float = 1.0,
               clock=time.time, fallback_below_epochs: int = 0, validation_images: float = 0.0):
    super().__init__()
    self.deadline, self.budget_seconds = deadline, budget_seconds
    self.steps_per_epoch, self.global_batch = steps_per_epoch, global_batch
    self.max_epochs = max_epochs
    self.plan_path, self.schedule = plan_path, schedule
    self.after_fit_images = after_fit_images  # (validation + test images) / training images: what
                                              # calibration predicts
    self.validation_images = validation_images  # validation images / training images: each epoch's
                                                # validation pass
    # fallback.NetworkTooSlow below this many projected epochs (0: never)
    self.fallback_below_epochs = fallback_below_epochs
    self._network_checked = False
    self._clock = clock
    self.plan: Plan | None = None
    self.stopped_because: str | None = None
    self._epochs_run = 0
    self._epoch_start = self._batch_start = 0.0
    self._epoch_seconds = 0.0
    self._recent_epoch_seconds: list[float] = []
    self._first_batches: list[float] = []

  def reserve(self) -> float:
    """Returns the seconds kept after the fit for calibration, report and export (from the last
    epoch's time)."""
    return self._reserve_after(self._epoch_seconds)

  def _reserve_after(self, epoch_seconds: float) -> float:
    return max(_MIN_RESERVE_SECONDS, epoch_seconds * self.after_fit_images
               + _SAVE_AND_EXPORT_SECONDS)

  def on_train_begin(self, logs=None):
    self.plan = Plan.read(self.plan_path)
    if self.plan is not None:
      logging.info("budget: resuming with the plan in %s, %d epochs", self.plan_path,
                   self.plan.planned_epochs)
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
    probe = max(3, self.steps_per_epoch // 20)  # the first batch traces the step; the next ones
                                                # read and decode
    if len(self._first_batches) == probe + 1 and probe + 1 < self.steps_per_epoch:
      per_batch = sum(self._first_batches[1:]) / probe
      first_epoch_end = self._clock() + per_batch * (self.steps_per_epoch - probe - 1)
      self._check_first_epoch(first_epoch_end,
                              f"is on course to take {_minutes(per_batch * self.steps_per_epoch)} "
                              f"at the speed measured over its first {probe + 1} steps")
      # An epoch: its steps at this speed, and a validation pass (predicting an image costs a third
      # of training).
      self._check_network(per_batch * self.steps_per_epoch * (1 + self.validation_images / 3),
                          first_epoch_end)

  def _check_network(self, epoch_seconds: float, first_epoch_end: float) -> None:
    """``fallback.NetworkTooSlow`` where the epochs the budget holds at ``epoch_seconds`` are fewer
    than the fallback's threshold and than ``max_epochs`` (a network that gets all its epochs is not
    too slow)."""
    if self._network_checked or not self.fallback_below_epochs:
      return
    self._network_checked = True
    affordable = max(0.0, self.deadline - first_epoch_end - self._reserve_after(epoch_seconds))
    projected = 1 + math.floor(affordable / max(epoch_seconds, 1e-9))
    if projected < min(self.fallback_below_epochs, self.max_epochs):
      images_per_second = self.steps_per_epoch * self.global_batch / max(epoch_seconds, 1e-9)
      raise fallback.NetworkTooSlow(projected, self.fallback_below_epochs,
                                    round(images_per_second, 1))

  def _check_first_epoch(self, first_epoch_end: float, how_long: str) -> None:
    if first_epoch_end + _MIN_RESERVE_SECONDS > self.deadline:
      needed = first_epoch_end + _MIN_RESERVE_SECONDS - (self.deadline - self.budget_seconds)
      raise BudgetTooSmall(
          f"config.train.budget ({_minutes(self.budget_seconds)}) cannot hold one epoch plus "
          "calibration and export on this machine: the first epoch alone (decoding every image) "
          f"{how_long}; give at least {_minutes(needed * 1.2)}, or fewer or smaller images")

  def on_epoch_end(self, epoch, logs=None):
    now = self._clock()
    epoch_seconds = self._epoch_seconds = now - self._epoch_start
    if self._epochs_run:  # a process's first epoch traces the step and fills the cache: not speed
      self._recent_epoch_seconds.append(epoch_seconds)
    self._epochs_run += 1
    finished = epoch + 1
    if self.plan is None and self._epochs_run == 1:  # an epoch too short to probe: said at its end
      self._check_first_epoch(now, f"took {_minutes(epoch_seconds)}")
      self._check_network(epoch_seconds, now)
    if self.plan is None and (self._epochs_run >= 2 or finished >= self.max_epochs):
      self._make_plan(finished, epoch_seconds, now)
    if self.plan is None:
      return
    if finished < self.plan.planned_epochs and self._recent_epoch_seconds:
      self._shorten_if_late(finished, now)
    if finished >= self.plan.planned_epochs:
      self._stop("planned" if self.plan.planned_epochs < self.max_epochs else "max_epochs")
    elif now + epoch_seconds + self.reserve() > self.deadline:
      logging.warning("budget: the machine is slower than planned (epoch %d took %.0f s): stopping "
                      "after %d of %d planned epochs, to leave %.0f s for calibration, report and "
                      "export", finished, epoch_seconds,
                      finished, self.plan.planned_epochs, self.reserve())
      self._stop("slower than planned")

  def _make_plan(self, finished: int, epoch_seconds: float, now: float) -> None:
    affordable = math.floor(max(0.0, self.deadline - now
                                - self.reserve()) / max(epoch_seconds, 1e-9))
    planned = max(finished, min(self.max_epochs, finished + affordable))
    step = finished * self.steps_per_epoch
    self.plan = Plan(self.budget_seconds, planned, planned * self.steps_per_epoch,
                     round(self.steps_per_epoch * self.global_batch / max(epoch_seconds, 1e-9), 1),
                     round(self.reserve(), 1), step)
    if self.schedule is not None:
      self.schedule.plan(self.plan.planned_steps, step)
    logging.info("budget %s: %d epochs planned (%d steps; at most %d), %.1f images/s measured, "
                 "%.0f s kept for calibration, report and export", _minutes(self.budget_seconds),
                 planned, self.plan.planned_steps, self.max_epochs,
                 self.plan.measured_images_per_second, self.plan.reserved_seconds)
    self.plan.write(self.plan_path)

  def _shorten_if_late(self, finished: int, now: float) -> None:
    """Shortens the plan where the epochs left no longer fit at the recent speed (the median of
    the last ``_RECENT_EPOCHS`` epochs: another job took the cores), and re-plans the decay from the
    rate reached to end there: the run ends on a finished schedule, not one cut short. An epoch
    short is let be: the decay's tail is flat, and the deadline check stops it in time."""
    epoch_seconds = statistics.median(self._recent_epoch_seconds[-_RECENT_EPOCHS:])
    affordable = math.floor(max(0.0, self.deadline - now - self._reserve_after(epoch_seconds))
                            / max(epoch_seconds, 1e-9))
    if not affordable or finished + affordable >= self.plan.planned_epochs - 1:
      return  # on time; or no epoch left at all, which the caller stops on
    planned = finished + affordable
    step = finished * self.steps_per_epoch
    logging.warning("budget: the machine is slower than planned (%.0f s an epoch lately): %d "
                    "epochs instead of %d, the learning-rate decay re-planned to end there",
                    epoch_seconds, planned, self.plan.planned_epochs)
    self.plan = dataclasses.replace(self.plan, planned_epochs=planned,
                                    planned_steps=planned * self.steps_per_epoch,
                                    anchor_step=step, shortened=self.plan.shortened + 1)
    if self.schedule is not None:
      self.schedule.plan(self.plan.planned_steps, step)
    self.plan.write(self.plan_path)

  def _stop(self, reason: str) -> None:
    self.stopped_because = reason
    self.model.stop_training = True

  def describe(self) -> dict:
    """Describes, for report.json, the plan, and why the fit stopped where it did."""
    return {**(dataclasses.asdict(self.plan) if self.plan
               else {"budget_seconds": self.budget_seconds}),
            "stopped": self.stopped_because or "early stopping or epochs"}


def _minutes(seconds: float) -> str:
  return f"{seconds / 60:.1f} min"
