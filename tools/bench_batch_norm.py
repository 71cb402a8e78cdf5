"""Training images/s of a model with Keras' BatchNormalization against the same model with the fused
layer.

  python tools/bench_batch_norm.py --config=configs/best.py

The model builders normalize with ``layers.FusedBatchNormalization`` (TensorFlow's
FusedBatchNormV3, one op); the reference is the same model cloned with
``keras.layers.BatchNormalization`` (same weights, same results). Both train on one
in-memory batch (no input work), compiled alike under config.train.precision, timed in
alternating turns (each keeps its best); the ratio fused / Keras is the speed-up.
Figures per second of wall-clock time and per CPU-second of this process.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mlc_tf import hardware, models  # noqa: E402
from mlc_tf.cli import common  # noqa: E402
from mlc_tf.models import layers  # noqa: E402
from mlc_tf.train import distribute, optimizers  # noqa: E402
from tools import timing  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", common.repo_config("best.py"),
                                          "Training config (its model).")
_STEPS = flags.DEFINE_integer("steps",
                              8,
                              "Training steps per timed turn (the first untimed).",
                              lower_bound=2)
_TURNS = flags.DEFINE_integer("turns", 3, "Timed turns of each model, alternating.")
_NUM_LABELS = 14


def with_keras_batch_norm(model: keras.Model) -> keras.Model:
  """``model`` rebuilt with keras.layers.BatchNormalization where it has the fused layer, weights
  copied."""
  def clone(layer):
    if isinstance(layer, layers.FusedBatchNormalization):
      return keras.layers.BatchNormalization.from_config(layer.get_config())
    return layer.__class__.from_config(layer.get_config())
  reference = keras.models.clone_model(model, clone_function=clone)
  reference.set_weights(model.get_weights())
  return reference


def main(argv):
  del argv
  cfg = _CONFIG.value
  choice = hardware.resolve_precision(cfg.train.precision)
  with distribute.precision(choice.policy):
    turns = timed_turns(cfg)
  print(
      f"model {cfg.model.name} "
      f"({', '.join(f'{k} {v}' for k, v in cfg.model.items() if k != 'name')}) at "
      f"{cfg.data.image_size}x{cfg.data.image_size}, batch {cfg.train.batch_size}, "
      f"precision {choice.policy}, {os.cpu_count()} CPUs, CPU {hardware.read_cpu().model}")
  wall = {name: max(r.per_wall for r in rates) for name, rates in turns.items()}
  cpu = {name: max(r.per_cpu for r in rates) for name, rates in turns.items()}
  for name, rates in turns.items():
    print(f"training, {name:24s}: {wall[name]:7.1f} images/s wall, {cpu[name]:7.1f} images/CPU-s  "
          f"(turns, wall: {', '.join(r.describe() for r in rates)})")
  keras_name, fused_name = turns
  print(f"fused / keras: {wall[fused_name] / wall[keras_name]:.2f}x wall, "
        f"{cpu[fused_name] / cpu[keras_name]:.2f}x per CPU-s")


def timed_turns(cfg) -> dict[str, list[timing.Rate]]:
  """The timed turns of the config's model with Keras' layer and with the fused one, alternating."""
  keras.utils.set_random_seed(cfg.seed)
  size, batch = cfg.data.image_size, cfg.train.batch_size
  fused = models.build(cfg.model, _NUM_LABELS, size)
  if not any(isinstance(layer, layers.FusedBatchNormalization) for layer in fused.layers):
    raise app.UsageError(f"model {cfg.model.name} has no batch normalization to compare")
  candidates = {
      "keras BatchNormalization": with_keras_batch_norm(fused),
      "FusedBatchNormalization": fused
  }
  rng = np.random.default_rng(cfg.seed)
  data = tf.data.Dataset.from_tensors(
      (rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32),
       (rng.random((batch, _NUM_LABELS)) < 0.2).astype(np.float32))).repeat()
  for model in candidates.values():
    model.compile(optimizer=optimizers.make_optimizer(cfg.optimizer), loss="binary_crossentropy",
                  jit_compile="auto" if cfg.train.jit_compile is None else cfg.train.jit_compile)
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # traces
  turns = {name: [] for name in candidates}
  for _ in range(_TURNS.value):
    for name, model in candidates.items():
      turns[name].append(timing.timed_fit(model, data, _STEPS.value, batch))
  return turns


if __name__ == "__main__":
  app.run(main)
