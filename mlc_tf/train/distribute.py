"""Scaling a run out and up: tf.distribute strategies, the chief, global batch and LR scaling,
precision.

Distribution is TensorFlow's own: ``MirroredStrategy`` for the GPUs of one
host, ``MultiWorkerMirroredStrategy`` for several hosts. The cluster of a
multi-worker job comes from the ``TF_CONFIG`` environment variable, read by
tf.distribute's own cluster resolver; nothing in mlc_tf reads it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import keras
import tensorflow as tf

from mlc_tf import hardware

STRATEGIES = ("default", "mirrored", "multi_worker")
LR_SCALING = ("none", "linear", "sqrt")


def make_strategy(name: str) -> tf.distribute.Strategy:
  """Makes the tf.distribute strategy config.strategy names.

  ``multi_worker`` must be created before the process runs any other
  TensorFlow op (collective ops are configured at start-up); without
  ``TF_CONFIG`` it is a one-worker cluster.
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Tells whether this process writes checkpoints, reports and exports (one per cluster)."""
  return bool(strategy.extended.should_checkpoint)


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """Counts the processes in the cluster that train (1 outside a multi-worker job)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return 1
  jobs = resolver.cluster_spec().as_dict()
  return max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))


def describe(strategy: tf.distribute.Strategy) -> str:
  """Describes in one line for the log: which strategy, which task this is, how many replicas."""
  resolver = getattr(strategy, "cluster_resolver", None)
  task = ""
  if resolver is not None and resolver.task_type is not None:
    task = f", task {resolver.task_type}:{resolver.task_id}"
  role = "chief" if is_chief(strategy) else "not chief"
  return (f"{type(strategy).__name__}{task} ({role}), "
          f"{strategy.num_replicas_in_sync} replica(s) in sync")


def global_batch_size(per_replica_batch_size: int, strategy: tf.distribute.Strategy) -> int:
  """Returns the images per optimizer step across the cluster: per-replica batch x replicas."""
  return per_replica_batch_size * strategy.num_replicas_in_sync


def steps_per_epoch(num_examples: int, global_batch: int) -> int:
  """Returns the steps that show every training image once (the last global batch may be short)."""
  return max(1, math.ceil(num_examples / global_batch))


def scaled_learning_rate(learning_rate: float, global_batch: int, base_batch_size: int,
                         rule: str) -> float:
  """Returns the learning rate for ``global_batch``, given one tuned at ``base_batch_size``.

  ``linear`` keeps the per-image step size (Goyal et al. 2017), ``sqrt`` keeps
  the gradient noise scale (suits Adam); ``none`` leaves it alone.
  """
  if rule not in LR_SCALING:
    raise ValueError(f"unknown learning-rate scaling {rule!r}; known: {', '.join(LR_SCALING)}")
  ratio = global_batch / base_batch_size
  return learning_rate * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


@contextlib.contextmanager
def precision(policy: str) -> Iterator[None]:
  """Sets Keras' global dtype policy to ``policy`` inside the block, and restores it after.

  Under ``mixed_float16``/``mixed_bfloat16`` layers compute in 16 bits and keep
  float32 variables; the models' sigmoid heads stay float32, and
  ``Model.compile`` adds loss scaling for float16 by itself.
  """
  if policy not in hardware.POLICIES:
    raise ValueError(f"unknown precision {policy!r}; known: {', '.join(hardware.POLICIES)}")
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(policy)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def data_sharded_options() -> tf.data.Options:
  """Returns options for an evaluation dataset under a strategy: each worker keeps its slice of
  every global batch.

  Explicit, because the default (AUTO) first looks for files to shard by,
  and ours are read inside a map.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return options


class MultiWorkerModel(keras.Model):
  """A functional model that ``fit``s under a multi-worker ``MultiWorkerMirroredStrategy``.

  Keras 3 (3.15 here; keras-team/keras#20585) fails there in two places:
  it all-reduces the first (x, y) batch to learn its shapes, and it averages
  each step's scalar logs across workers along an axis they lack. This
  builds from this worker's own first batch and gives the step logs a
  length-1 axis. Epoch logs are unaffected: Keras reads them from the
  metrics, which aggregate over every replica. Training only: the trained
  weights go back into a plain model before anything is saved.
  """

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if iterator is not None:
      for _, _, batches in iterator:
        local = self.distribute_strategy.experimental_local_results
        data_batch = tf.nest.map_structure(lambda value: local(value)[0], next(batches))
        break
    with self.distribute_strategy.scope():
      self._symbolic_build(data_batch=data_batch)

  def train_step(self, data):
    return {name: tf.reshape(value, [1]) for name, value in super().train_step(data).items()}

  def test_step(self, data):
    return {name: tf.reshape(value, [1]) for name, value in super().test_step(data).items()}


def for_strategy(model: keras.Model, strategy: tf.distribute.Strategy) -> keras.Model:
  """Returns ``model`` ready to compile and fit under ``strategy`` (same layers and weights)."""
  if num_workers(strategy) > 1:
    return MultiWorkerModel(model.inputs, model.outputs, name=model.name)
  return model
