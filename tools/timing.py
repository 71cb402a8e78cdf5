"""The benchmarks' timer: work per second of wall-clock time and per second of this process's CPU time.

Wall-clock time is what a user waits and follows the load of other processes
sharing the CPUs; CPU time (all threads) is what the work costs, whatever the load.
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf


class Rate:
  """Work per wall-clock second and per CPU second of this process, over a ``with`` block.

  Give ``work`` up front, or add to it inside the block when it is counted as it goes.
  """

  def __init__(self, work: float = 0):
    self.work = work

  def __enter__(self) -> Rate:
    self.wall, self.cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc) -> None:
    self.per_wall = self.work / (time.perf_counter() - self.wall)
    self.per_cpu = self.work / (time.process_time() - self.cpu)


def timed_fit(model: keras.Model, dataset: tf.data.Dataset, steps: int, batch_size: int) -> Rate:
  """Images per second of ``steps`` training steps (model.fit, as training does, metrics included)."""
  with Rate(steps * batch_size) as rate:
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
  return rate
