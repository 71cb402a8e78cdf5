"""The benchmarks' timer: work per second of wall-clock time and per second of this process's CPU
time.

Wall-clock time is what a user waits and follows the load of other processes
sharing the CPUs; CPU time (all threads) is what the work costs, whatever the load.
On a virtual machine the host can also take the CPUs away (steal time: the
`st` column of `vmstat`); a 2-core cloud VM was seen losing up to half of its
time that way, which halves wall-clock rates while nothing in the guest runs.
Each Rate therefore records the share of the machine's CPU time stolen during
it, from /proc/stat (Linux; None elsewhere), and how many cores this process
kept busy (its CPU seconds per wall second), so a slow turn can be told apart:
stolen by the host, or left to one core by TensorFlow while the other idled.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import tensorflow as tf


def _cpu_jiffies() -> tuple[int, int] | None:
  """(stolen, total) clock ticks of all CPUs since boot, from the first line of /proc/stat; None
  without it."""
  try:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
  except OSError:
    return None
  # cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in
  # user/nice.
  ticks = [int(f) for f in fields[1:9]]
  return ticks[7], sum(ticks)


class Rate:
  """Work per wall-clock second and per CPU second of this process, over a ``with`` block.

  Give ``work`` up front, or add to it inside the block when it is counted as it goes. ``stolen`` is
  the share of the machine's CPU time the hypervisor took during the block (0 on bare metal, None
  where unknown); ``cores`` is this process's CPU time over the block's wall time (2.0: both cores
  of a 2-core machine busy).
  """

  def __init__(self, work: float = 0):
    self.work = work

  def __enter__(self) -> Rate:
    self.wall, self.cpu, self._jiffies = time.perf_counter(), time.process_time(), _cpu_jiffies()
    return self

  def __exit__(self, *exc) -> None:
    wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
    self.per_wall, self.per_cpu, self.cores = self.work / wall, self.work / cpu, cpu / wall
    after = _cpu_jiffies()
    self.stolen = None
    if self._jiffies and after and after[1] > self._jiffies[1]:
      self.stolen = (after[0] - self._jiffies[0]) / (after[1] - self._jiffies[1])

  def conditions(self) -> str:
    """The cores this process kept busy and the share stolen during the block, e.g. ``'1.9 cores,
    stolen 2%'``."""
    return f"{self.cores:.1f} cores" + (""
                                        if self.stolen is None else f", stolen {self.stolen:.0%}")

  def describe(self) -> str:
    """The wall-clock rate and its conditions, e.g. ``'98.3 (1.9 cores, stolen 2%)'``."""
    return f"{self.per_wall:.1f} ({self.conditions()})"


class _StepsAfterTheFirst(keras.callbacks.Callback):
  """A Rate over a fit's steps after its first, ended at its last step's end (logs pythonified: the
  step is done)."""

  def __init__(self, steps: int, batch_size: int):
    super().__init__()
    self.rate, self._last = Rate((steps - 1) * batch_size), steps - 1

  def on_train_batch_end(self, batch, logs=None):
    if batch == 0:
      self.rate.__enter__()
    elif batch == self._last:
      self.rate.__exit__(None, None, None)


def timed_fit(model: keras.Model, dataset: tf.data.Dataset, steps: int, batch_size: int) -> Rate:
  """Images per second of ``steps`` training steps (model.fit, as training does, metrics included),
  steady state.

  The clock starts when the first step has ended: each call's fit set-up, a new iterator over
  ``dataset`` and the pipeline's first fill (its shuffle buffer, its prefetch) come once per
  training run, not once per few steps, and would otherwise weigh on short turns and on the
  pipeline feed only.
  """
  if steps < 2:
    raise ValueError(f"timed_fit needs at least 2 steps (the first is not timed), not {steps}")
  timer = _StepsAfterTheFirst(steps, batch_size)
  model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
  return timer.rate
