"""A time budget: parsing it, the plan from measured speed, the fallback, a budgeted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest
from helpers import REPO_ROOT, fast_config, make_tiny_corpus

from mlc_tf import config as config_lib
from mlc_tf.train import budget, fallback, schedules


@pytest.mark.parametrize("text, seconds", [("60m", 3600), ("1h30m", 5400), ("90s", 90),
                                           ("2h", 7200), ("0.5h", 1800), (" 10M ", 600), ("", None),
                                           (None, None)])
def test_budget_strings(text, seconds):
  assert budget.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["60", "an hour", "60 minutes", "0m", "1h-5m", "m"])
def test_a_bad_budget_string_is_a_config_error(text):
  with pytest.raises(config_lib.ConfigError, match="config.train.budget"):
    budget.parse_budget(text)


class _Clock:
  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def _model():
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.stop_training = False
  return model


def _run_epoch(callback, clock, epoch, steps, seconds_per_step, validation_seconds=1.0):
  callback.on_epoch_begin(epoch)
  for batch in range(steps):
    callback.on_train_batch_begin(batch)
    clock.now += seconds_per_step
    callback.on_train_batch_end(batch)
  clock.now += validation_seconds
  callback.on_epoch_end(epoch)


def _budget(tmp_path, clock, budget_seconds=3600, max_epochs=100, schedule=None, steps=50):
  callback = budget.TimeBudget(clock() + budget_seconds, budget_seconds, steps_per_epoch=steps,
                               global_batch=8, max_epochs=max_epochs,
                               plan_path=str(tmp_path / budget.PLAN_FILE), schedule=schedule,
                               after_fit_images=0.2, clock=clock)
  callback.set_model(_model())
  callback.on_train_begin()
  return callback


def test_the_second_epoch_plans_the_run_to_end_inside_the_budget(tmp_path):
  clock = _Clock()
  schedule = schedules.PlannedDecay(1.0, warmup_steps=100, total_steps=100 * 50, floor=0.0)
  callback = _budget(tmp_path, clock, schedule=schedule)
  _run_epoch(callback, clock, 0, 50, seconds_per_step=2.0)   # decoding and caching: slow
  assert callback.plan is None
  _run_epoch(callback, clock, 1, 50, seconds_per_step=1.0)   # 51 s an epoch from here on
  # 3600 - 152 s spent - 60 s reserved = 3388 s: 66 more epochs of 51 s
  assert callback.plan.planned_epochs == 68 and callback.plan.planned_steps == 68 * 50
  assert callback.plan.measured_images_per_second == pytest.approx(50 * 8 / 51, abs=0.1)
  # the decay ends where the plan does
  assert float(schedule(68 * 50)) == pytest.approx(0.0, abs=1e-6)
  assert json.loads((tmp_path / budget.PLAN_FILE).read_text())["planned_epochs"] == 68
  for epoch in range(2, 68):
    assert not callback.model.stop_training
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=1.0)
  assert callback.model.stop_training and callback.describe()["stopped"] == "planned"
  assert clock.now + callback.reserve() <= 1000 + 3600


def test_a_fast_machine_stops_at_the_most_epochs_worth_running(tmp_path):
  clock = _Clock()
  callback = _budget(tmp_path, clock, max_epochs=3)
  for epoch in range(3):
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=0.1)
  assert callback.plan.planned_epochs == 3 and callback.model.stop_training
  assert callback.describe()["stopped"] == "max_epochs"


def test_a_machine_turning_slower_shortens_the_plan_and_still_ends_its_decay_on_time(tmp_path):
  clock = _Clock()
  schedule = schedules.PlannedDecay(1.0, warmup_steps=100, total_steps=100 * 50, floor=0.0)
  callback = _budget(tmp_path, clock, schedule=schedule)
  _run_epoch(callback, clock, 0, 50, seconds_per_step=1.0)
  _run_epoch(callback, clock, 1, 50, seconds_per_step=1.0)
  planned = callback.plan.planned_epochs
  for epoch in range(2, 10):
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=1.0)
  rate = float(schedule(10 * 50))
  epoch = 10
  while not callback.model.stop_training:
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=3.0)  # another job took the cores
    epoch += 1
  plan = callback.plan
  assert epoch == plan.planned_epochs < planned and plan.shortened >= 1
  assert callback.describe()["stopped"] == "planned"
  # the decay went on from the rate reached and ended where the shortened plan does
  assert float(schedule(plan.anchor_step)) <= rate
  assert float(schedule(plan.planned_steps)) == pytest.approx(0.0, abs=1e-6)
  assert clock.now + callback.reserve() <= 1000 + 3600
  assert json.loads((tmp_path / budget.PLAN_FILE).read_text())["shortened"] == plan.shortened


def test_one_slow_epoch_does_not_shorten_the_plan(tmp_path):
  clock = _Clock()
  callback = _budget(tmp_path, clock)
  for epoch in range(4):
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=1.0)
  planned = callback.plan.planned_epochs
  _run_epoch(callback, clock, 4, 50, seconds_per_step=2.0)  # a hiccup: the median of 3 ignores it
  assert callback.plan.planned_epochs == planned and callback.plan.shortened == 0


def test_a_machine_slower_than_planned_at_the_end_stops_early_leaving_time_to_export(tmp_path):
  clock = _Clock()
  callback = _budget(tmp_path, clock)
  _run_epoch(callback, clock, 0, 50, seconds_per_step=1.0)
  _run_epoch(callback, clock, 1, 50, seconds_per_step=1.0)
  planned = callback.plan.planned_epochs
  epoch = 2
  while not callback.model.stop_training:
    # on plan until the last minutes, then an epoch three times the time: no epoch left to re-plan
    slow = clock.now > 1000 + 3600 - 300
    _run_epoch(callback, clock, epoch, 50, seconds_per_step=3.0 if slow else 1.0)
    epoch += 1
  assert epoch < planned and callback.describe()["stopped"] == "slower than planned"
  assert clock.now + callback.reserve() <= 1000 + 3600


def test_a_budget_too_small_for_one_epoch_says_so_a_few_steps_in(tmp_path):
  clock = _Clock()
  callback = _budget(tmp_path, clock, budget_seconds=120)
  callback.on_epoch_begin(0)
  with pytest.raises(budget.BudgetTooSmall, match=r"cannot hold one epoch.*give at least"):
    for batch in range(50):
      callback.on_train_batch_begin(batch)
      clock.now += 5.0
      callback.on_train_batch_end(batch)
  assert clock.now - 1000 <= 5.0 * 5  # said after the probe's steps, not at the epoch's end


def test_a_resumed_run_keeps_the_length_it_planned(tmp_path):
  clock = _Clock()
  first = _budget(tmp_path, clock)
  _run_epoch(first, clock, 0, 50, seconds_per_step=1.0)
  _run_epoch(first, clock, 1, 50, seconds_per_step=1.0)
  schedule = schedules.PlannedDecay(1.0, warmup_steps=0, total_steps=100 * 50)
  # a new process, a new budget
  resumed = _budget(tmp_path, _Clock(), budget_seconds=60, schedule=schedule)
  assert resumed.plan == first.plan
  assert float(schedule(first.plan.planned_steps)) == pytest.approx(0.0, abs=1e-6)


def test_a_budgeted_run_reports_what_the_budget_bought(tmp_path):
  from mlc_tf.train import training
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=40)
  cfg = fast_config(epochs=4)
  cfg.train.budget = "10m"
  cfg.optimizer.schedule = "linear"
  result = training.train(cfg, root, str(tmp_path / "run"))
  bought = result.report["training"]
  assert bought["budget"]["planned_epochs"] == 4 and bought["budget"]["stopped"] == "max_epochs"
  assert bought["epochs"] == 4 and bought["optimizer_steps"] == bought["budget"]["planned_steps"]
  assert bought["precision"]["policy"] == "float32" and bought["hardware"]["cpu"]["model"]
  assert os.path.exists(tmp_path / "run" / budget.PLAN_FILE)


@pytest.mark.parametrize("seconds_per_step, max_epochs, falls_back", [
    (5.0, 100, True),    # about 13 epochs in the hour: fewer than the 20 the network needs
    (1.0, 100, False),   # about 65: the network trains
    (5.0, 10, False),    # 13 hold all 10 it is given: not too slow
])
def test_a_network_the_budget_holds_too_few_epochs_of_falls_back_a_few_steps_in(
    tmp_path, seconds_per_step, max_epochs, falls_back):
  clock = _Clock()
  callback = budget.TimeBudget(clock() + 3600, 3600, steps_per_epoch=50, global_batch=8,
                               max_epochs=max_epochs, plan_path=str(tmp_path / budget.PLAN_FILE),
                               after_fit_images=0.2, clock=clock, fallback_below_epochs=20,
                               validation_images=0.15)
  callback.set_model(_model())
  callback.on_train_begin()
  if not falls_back:  # the network trains on: its second epoch plans the run
    _run_epoch(callback, clock, 0, 50, seconds_per_step)
    _run_epoch(callback, clock, 1, 50, seconds_per_step)
    assert callback.plan is not None and callback.plan.planned_epochs > 2
    return
  callback.on_epoch_begin(0)
  # an epoch: 50 steps of 5 s and a validation pass of 0.15 x 250 / 3 s = 262.5 s; the first ends at
  # 1250 s, 82.5 s are reserved: 12 more epochs fit in 3600 s
  with pytest.raises(fallback.NetworkTooSlow,
                     match=r"about 13 epochs of this network at the 1.5 training images/s "
                           r"measured, fewer than config.train.fallback.below_epochs=20"):
    for batch in range(50):
      callback.on_train_batch_begin(batch)
      clock.now += seconds_per_step
      callback.on_train_batch_end(batch)
  assert clock.now - 1000 <= 5.0 * 5  # said after the probe's steps


@pytest.mark.parametrize("changes, message", [({"data": {"image_sise": 16}}, "image_sise"),
                                              ({"data": {"image_size": "small"}}, "image_size")])
def test_a_fallback_that_cannot_apply_is_a_config_error(changes, message):
  cfg = fast_config()
  cfg.train.fallback.below_epochs = 20
  cfg.train.fallback.changes = changes
  with pytest.raises(config_lib.ConfigError, match=f"config.train.fallback.changes=.*{message}"):
    fallback.check(cfg)


def test_falling_back_records_why_and_clears_the_slow_networks_training_state(tmp_path):
  workdir = tmp_path / "run"
  (workdir / "backup").mkdir(parents=True)
  (workdir / budget.PLAN_FILE).write_text("{}")
  (workdir / "history.csv").write_text("epoch,loss\n")
  cfg = fast_config(image_size=24)
  cfg.train.budget = "1h"
  cfg.train.fallback.below_epochs = 20
  cfg.train.fallback.changes = {"data": {"image_size": 16}}
  run_budget = budget.Budget.of(cfg, str(workdir), started=0.0)
  fallback_cfg = run_budget.fall_back(cfg, fallback.NetworkTooSlow(3, 20, 19.4))
  assert fallback_cfg.data.image_size == 16 and fallback_cfg.train.fallback.below_epochs == 0
  assert cfg.data.image_size == 24
  assert sorted(p.name for p in workdir.iterdir()) == [fallback.FALLBACK_FILE]
  taken = fallback.taken(str(workdir))
  assert taken == run_budget.fallback_taken and taken["changes"] == {"data": {"image_size": 16}}
  assert taken["projected_epochs"] == 3
  assert taken["measured_images_per_second"] == 19.4 and "about 3 epochs" in taken["reason"]
  # what a resumed run trains
  assert fallback.with_changes(cfg, taken["changes"]).data.image_size == 16
  # A new run (nothing backed up) in the workdir forgets the finished run's fallback.
  assert budget.Budget.of(cfg, str(workdir), started=0.0).config_to_train(cfg).data.image_size == 24
  assert fallback.taken(str(workdir)) is None


def test_a_run_too_slow_for_its_budget_trains_the_fallback_and_says_so(tmp_path):
  from mlc_tf.train import training
  root, workdir = str(tmp_path / "corpus"), str(tmp_path / "run")
  make_tiny_corpus(root, num_images=40)
  cfg = fast_config(image_size=24, epochs=10_000)
  cfg.train.budget = "10m"
  cfg.train.fallback.below_epochs = 10_000  # the budget holds fewer epochs than that of anything
  # best.py's fallback changes the model (a stride-2 stem); data and train sections merge the same
  # way.
  changes = {"data": {"image_size": 16}, "model": {"stem_stride": 2}, "train": {"epochs": 2}}
  cfg.train.fallback.changes = changes
  result = training.train(cfg, root, workdir)
  assert result.config.data.image_size == 16 and result.config.train.fallback.below_epochs == 0
  assert result.model.input_shape[1:3] == (16, 16) and result.report["training"]["epochs"] == 2
  first_conv = next(
      layer for layer in result.model.layers if isinstance(layer, keras.layers.Conv2D))
  assert result.config.model.stem_stride == 2 and first_conv.strides == (2, 2)
  taken = result.report["training"]["budget"]["fallback"]
  assert taken["changes"] == changes
  assert "fewer than config.train.fallback.below_epochs=10000" in taken["reason"]
  written = json.loads((tmp_path / "run" / "config.json").read_text())
  assert written["data"]["image_size"] == 16 and written["model"]["stem_stride"] == 2
  # A new run in the same workdir measures afresh: the finished run's fallback and plan are not its
  # own.
  cfg.train.fallback.below_epochs = 0
  cfg.train.epochs = 1
  again = training.train(cfg, root, workdir)
  assert again.config.data.image_size == 24 and "fallback" not in again.report["training"]["budget"]
  # its own plan, not the finished run's 2
  assert again.report["training"]["budget"]["planned_epochs"] == 1
  assert not os.path.exists(os.path.join(workdir, fallback.FALLBACK_FILE))


def test_a_budget_too_small_stops_the_run_with_a_clear_error(tmp_path):
  from mlc_tf.train import training
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=40)
  cfg = fast_config()
  cfg.train.budget = "1s"
  with pytest.raises(budget.BudgetTooSmall, match="cannot hold one epoch"):
    training.train(cfg, root, str(tmp_path / "run"))


def test_mlc_train_refuses_a_bad_budget_or_precision_before_reading_any_data(tmp_path):
  for override, message in (("--config.train.budget=sixty", "is not a duration"),
                            ("--config.train.precision=bf16", "unknown precision 'bf16'")):
    proc = subprocess.run([
        sys.executable, "-m", "mlc_tf.cli.train", f"--data_dir={tmp_path / 'no_such_corpus'}",
        f"--workdir={tmp_path / 'run'}", override
    ], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": REPO_ROOT})
    assert (proc.returncode == 1 and "mlc-train: error: " in proc.stderr
            and message in proc.stderr), proc.stderr[-2000:]
