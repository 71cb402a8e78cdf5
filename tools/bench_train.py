"""Training images/s with the real input pipeline against in-memory tensors, and FLOP/s against a
matmul peak.

  python tools/bench_train.py --data_dir=../shared/datasets/flickr14 --num_images=1024 --steps=20

Same model, same compile, same batch (--config, default configs/flickr14.py):
  * pipeline: mlc_tf's training input (decode_and_resize, cache, shuffle,
    batch, augment, prefetch, repeat), timed after one epoch has filled the cache;
  * in memory: one decoded batch held as a tensor and repeated: no input work.
The ratio pipeline / in-memory shows whether training waits for its input
(target >= 0.95). The two are timed in turns (A B A B ...) and each keeps its
best turn, so that load from other processes hits both alike. A turn is one
``fit`` of --steps steps timed from the end of its first (``timing.timed_fit``):
the steady state a training run is in, without each short fit's set-up and the
pipeline's refill of its shuffle buffer, which a run pays once. Each figure is
given per second of wall-clock time and per second of this process's CPU
time (all its threads): where other processes share the CPUs, the first
follows their load and the second does not. Each turn's wall figure comes
with the cores this process kept busy and the share of the machine's time
the hypervisor stole during it: a turn at half speed with ~1 core busy and
nothing stolen is this process leaving a core idle (its threads waiting), not the host.
config.train.precision (``auto`` resolved as training resolves it) and
config.train.jit_compile apply, as in training; TensorFlow's oneDNN kernels
are on or off as the entry points set them (TF_ENABLE_ONEDNN_OPTS=0 or 1 to choose).

FLOP/s: the float operations of one training step (forward, loss and
gradients, counted by TensorFlow's profiler on the step's graph; the
optimizer update is not counted) times steps/s, against the peak of this
machine measured the same way as a --matmul_size square matmul in the precision's compute dtype (a
bfloat16 matmul peaks about twice as high as a float32 one on a CPU with AMX).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mlc_tf import hardware, models  # noqa: E402
from mlc_tf.cli import common  # noqa: E402
from mlc_tf.data import corpus as corpus_lib  # noqa: E402
from mlc_tf.data import pipeline  # noqa: E402
from mlc_tf.train import distribute, losses, optimizers  # noqa: E402
from tools import timing  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", common.repo_config("flickr14.py"),
                                          "Training config.")
_DATA_DIR = flags.DEFINE_string("data_dir", "../shared/datasets/flickr14",
                                "Corpus directory (images/ + annotations/).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 1024,
                                   "Training images (the first N of the corpus).")
_STEPS = flags.DEFINE_integer("steps", 20, "Training steps per timed turn (the first untimed).",
                              lower_bound=2)
_TURNS = flags.DEFINE_integer("turns", 3, "Timed turns of each feed, alternating.")
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 2048,
                                    "Side of the square matmul that measures the peak.")


def matmul_peak_flops(size: int, dtype: str, repeats: int = 10) -> tuple[timing.Rate, float]:
  """The fastest (wall-clock) of ``repeats`` ``dtype`` [size, size] @ [size, size] matmuls, and the
  best FLOP/CPU-s."""
  a = tf.cast(tf.random.normal([size, size]), dtype)
  b = tf.cast(tf.random.normal([size, size]), dtype)
  tf.matmul(a, b).numpy()  # warm-up
  rates = []
  for _ in range(repeats):
    with timing.Rate(2 * size**3) as rate:
      tf.matmul(a, b).numpy()
    rates.append(rate)
  return max(rates, key=lambda r: r.per_wall), max(r.per_cpu for r in rates)


def train_step_flops(model: keras.Model, loss: keras.losses.Loss, batch: tuple[tf.Tensor,
                                                                               tf.Tensor]) -> int:
  """Float operations of forward + loss + gradients for ``batch``, from the step's graph."""
  @tf.function
  def step(x, y):
    with tf.GradientTape() as tape:
      value = loss(y, model(x, training=True))
    return tape.gradient(value, model.trainable_variables)
  graph = step.get_concrete_function(*batch).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def main(argv):
  del argv
  cfg = _CONFIG.value
  cpu, choice = hardware.read_cpu(), hardware.resolve_precision(cfg.train.precision)
  print(
      f"CPU {cpu.model} ({', '.join(cpu.describe()['flags'])}); TF_ENABLE_ONEDNN_OPTS="
      f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '(unset)')}; precision {choice.policy} "
      f"({choice.reason})")
  with distribute.precision(choice.policy):
    benchmark(cfg)


def benchmark(cfg):
  keras.utils.set_random_seed(cfg.seed)
  frame, _ = corpus_lib.load_corpus(_DATA_DIR.value, cfg.data.labels)
  frame = frame.iloc[:_NUM_IMAGES.value]
  names = corpus_lib.label_columns(frame)
  size, batch = cfg.data.image_size, cfg.train.batch_size
  print(f"{len(frame)} images of {_DATA_DIR.value} at {size}x{size}, model {cfg.model.name} "
        f"({', '.join(f'{k} {v}' for k, v in cfg.model.items() if k != 'name')}), batch {batch}, "
        f"{os.cpu_count()} CPUs, "
        f"devices: {', '.join(d.name for d in tf.config.list_logical_devices())}, "
        f"jit_compile {cfg.train.jit_compile}")

  real = pipeline.make_dataset(frame[corpus_lib.PATH_COLUMN].to_numpy(),
                               frame[names].to_numpy(),
                               image_size=size,
                               batch_size=batch,
                               training=True,
                               augment=cfg.augment,
                               seed=cfg.seed,
                               cache=cfg.data.cache,
                               drop_remainder=True).repeat()
  in_memory = tf.data.Dataset.from_tensors(next(iter(real))).repeat()

  model = models.build(cfg.model, len(names), size, names)
  loss = losses.make_loss(cfg.loss, names, frame[names].to_numpy())
  model.compile(optimizer=optimizers.make_optimizer(cfg.optimizer), loss=loss,
                metrics=[keras.metrics.F1Score(average="micro", threshold=0.5, name="f1_at_0.5"),
                         keras.metrics.AUC(multi_label=True, curve="PR", name="map")],
                jit_compile="auto" if cfg.train.jit_compile is None else cfg.train.jit_compile)
  steps_per_pass = len(frame) // batch
  with timing.Rate(steps_per_pass * batch) as first:
    model.fit(real, epochs=1, steps_per_epoch=steps_per_pass,
              verbose=0)  # traces, and fills the cache
  print(f"first epoch (decode + cache, tracing included): {first.describe()} images/s wall, "
        f"{first.per_cpu:7.1f} images/CPU-s")
  model.fit(in_memory, epochs=1, steps_per_epoch=2, verbose=0)

  turns = {"pipeline": [], "in memory": []}
  for _ in range(_TURNS.value):
    turns["pipeline"].append(timing.timed_fit(model, real, _STEPS.value, batch))
    turns["in memory"].append(timing.timed_fit(model, in_memory, _STEPS.value, batch))
  wall = {name: max(r.per_wall for r in rates) for name, rates in turns.items()}
  cpu = {name: max(r.per_cpu for r in rates) for name, rates in turns.items()}
  for name, rates in turns.items():
    print(f"training, {name:9s}: {wall[name]:7.1f} images/s wall, {cpu[name]:7.1f} images/CPU-s  "
          f"(turns, wall: {', '.join(r.describe() for r in rates)})")
  print(f"pipeline / in memory: {wall['pipeline'] / wall['in memory']:.3f} wall, "
        f"{cpu['pipeline'] / cpu['in memory']:.3f} per CPU-s  (target >= 0.95)")

  flops = train_step_flops(model, loss, next(iter(in_memory)))
  dtype = keras.mixed_precision.global_policy().compute_dtype
  fastest, peak_cpu = matmul_peak_flops(_MATMUL_SIZE.value, dtype)
  peak_wall = fastest.per_wall
  print(f"training step: {flops / 1e9:.2f} GFLOP per batch of {batch}; achieved "
        f"{flops * wall['in memory'] / batch / 1e9:.1f} GFLOP/s wall, "
        f"{flops * cpu['in memory'] / batch / 1e9:.1f} GFLOP/CPU-s")
  print(f"{dtype} matmul {_MATMUL_SIZE.value}^2: {peak_wall / 1e9:.1f} GFLOP/s wall "
        f"({fastest.conditions()}), "
        f"{peak_cpu / 1e9:.1f} GFLOP/CPU-s; "
        f"training reaches {flops * wall['in memory'] / batch / peak_wall:.1%} (wall), "
        f"{flops * cpu['in memory'] / batch / peak_cpu:.1%} (per CPU-s) of it")


if __name__ == "__main__":
  app.run(main, flags_parser=common.parse_flags)
