"""Does tagging the photos mlc-suggest ranks first pay? A simulated loop on a labelled corpus (issue
41, item 3).

  nice -n 19 python tools/active_loop.py --data_dir=../shared/datasets/flickr14 \
      --output_dir=workdirs/active_loop --rounds=4 --seeds=2

The corpus plays the untagged photos whose labels stay hidden until chosen. A fixed test part
(--test_fraction) scores; a fixed validation part of about --val_images photos (both stratified,
the same for every seed) chooses each label's F1-optimal threshold (as a tagged reviewer's own
photos would); the rest is the pool. Each seed starts from --start random photos of the pool; each
round adds --add photos, chosen either by the ranking of ``mlc_tf.evaluate.suggestions`` (score
near each label's threshold weighted toward rare labels, picked diverse on the network's pooled
features, the train prior of the photos labelled so far) or at random, and retrains a small
recipe from scratch: ``simple_cnn`` (--width, --depth) at --image_size px, random flips, Adam,
binary cross-entropy, --epochs fixed epochs. Both strategies share the seed's first model. The
images are decoded and resized once (``pipeline.decode_and_resize``), kept in memory and cached in
--output_dir (images_<size>.npz) for the next run.

Writes into --output_dir: results.csv and results.json (seed, strategy, round, labelled photos,
test macro-F1 at the validation thresholds, test mAP, seconds to train and score) and
active_loop.png (both measures against labelled photos, a colour per strategy, a line style per
seed). One round of one seed (--rounds=1 --seeds=1) took 98 s on the shared 2-core box; the full
default run (18 trainings of 1,000 to 3,000 photos) about 10 min.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

import json  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlc_tf import atomic_files  # noqa: E402
from mlc_tf.data import corpus, pipeline, stratification  # noqa: E402
from mlc_tf.evaluate import metrics, suggestions  # noqa: E402
from mlc_tf.models import cnn, inference  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", "../shared/datasets/flickr14",
                                "The labelled corpus (images/ + annotations/).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "workdirs/active_loop", "Where results go.")
_ROUNDS = flags.DEFINE_integer("rounds", 4, "Rounds of adding photos.", lower_bound=1)
_SEEDS = flags.DEFINE_integer("seeds", 2, "Seeds (0, 1, ...).", lower_bound=1)
_START = flags.DEFINE_integer("start", 1000, "Labelled photos at the start.", lower_bound=1)
_ADD = flags.DEFINE_integer("add", 500, "Photos added per round.", lower_bound=1)
_VAL_IMAGES = flags.DEFINE_integer("val_images", 1000, "Validation photos (thresholds).",
                                   lower_bound=1)
_TEST_FRACTION = flags.DEFINE_float("test_fraction", 0.2, "The held-out test part.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 32, "Side the images are resized to.")
_WIDTH = flags.DEFINE_integer("width", 16, "simple_cnn's first width.")
_DEPTH = flags.DEFINE_integer("depth", 3, "simple_cnn's blocks.")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Fixed epochs per training.", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Training batch size.")
STRATEGIES = ("ranked", "random")


def decoded_images(frame: pd.DataFrame, size: int, cache: str) -> np.ndarray:
  """The corpus's images as uint8 [N, size, size, 3], decoded once and cached in ``cache``."""
  if os.path.isfile(cache):
    with np.load(cache) as stored:
      if list(stored["ids"]) == list(frame.index):
        return stored["images"]
  ds = tf.data.Dataset.from_tensor_slices(frame[corpus.PATH_COLUMN].to_numpy()).map(
      lambda path: tf.cast(pipeline.decode_and_resize(tf.io.read_file(path), size), tf.uint8),
      num_parallel_calls=tf.data.AUTOTUNE).batch(256)
  images = np.concatenate([batch.numpy() for batch in ds])
  atomic_files.write_aside(cache, lambda staged: np.savez(staged, images=images,
                                                          ids=frame.index.to_numpy()))
  return images


def fit(images: np.ndarray, targets: np.ndarray, seed: int) -> keras.Model:
  """The small recipe, trained from scratch for --epochs epochs."""
  keras.utils.set_random_seed(seed)
  model = cnn.simple_cnn(targets.shape[1], images.shape[1], width=_WIDTH.value, depth=_DEPTH.value,
                         dropout=0.3)
  model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy())
  ds = tf.data.Dataset.from_tensor_slices((images, targets.astype(np.float32))).shuffle(
      len(images), seed=seed).map(lambda x, y: (tf.image.random_flip_left_right(
          tf.cast(x, tf.float32), seed=seed), y), num_parallel_calls=tf.data.AUTOTUNE).batch(
              _BATCH_SIZE.value).prefetch(tf.data.AUTOTUNE)
  model.fit(ds, epochs=_EPOCHS.value, verbose=0)
  return model


def answers(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
  """{"probabilities", "features"} of ``model`` on ``images`` (``inference.with_features``)."""
  names = [str(k) for k in range(model.output_shape[-1])]
  wrapped = inference.with_features(inference.build(model, names, np.full(len(names), 0.5)))
  ds = tf.data.Dataset.from_tensor_slices(images).map(lambda x: tf.cast(x, tf.float32)).batch(256)
  return {k: np.asarray(v) for k, v in wrapped.predict(ds, verbose=0).items()}


def run_seed(seed: int, images: np.ndarray, targets: np.ndarray, parts: dict, names: list[str]):
  """Yields a result row per strategy and round of one seed."""
  rng = np.random.default_rng(seed)
  start = rng.choice(parts["pool"], size=min(_START.value, len(parts["pool"])), replace=False)
  first = None
  for strategy in STRATEGIES:
    labelled = np.sort(start)
    for step in range(_ROUNDS.value + 1):
      began = time.time()
      model = first if step == 0 and first is not None else fit(images[labelled],
                                                                 targets[labelled], seed)
      if first is None:
        first = model
      val = answers(model, images[parts["val"]])["probabilities"]
      thresholds = metrics.f1_optimal_thresholds(targets[parts["val"]], val)
      test = answers(model, images[parts["test"]])["probabilities"]
      report = metrics.evaluate(targets[parts["test"]], test, thresholds, names)
      row = {"seed": seed, "strategy": strategy, "round": step, "labelled": len(labelled),
             "macro_f1": round(report["at_calibrated"]["macro"]["f1"], 4),
             "map": round(report["average_precision"]["map"], 4),
             "seconds": round(time.time() - began, 1)}
      print(json.dumps(row), flush=True)
      yield row
      if step == _ROUNDS.value:
        break
      unlabelled = np.setdiff1d(parts["pool"], labelled)
      count = min(_ADD.value, len(unlabelled))
      if strategy == "random":
        chosen = rng.choice(unlabelled, size=count, replace=False)
      else:
        pool = answers(model, images[unlabelled])
        prior = targets[labelled].mean(axis=0)
        score = suggestions.scores(pool["probabilities"], thresholds, prior)
        chosen = unlabelled[suggestions.pick_diverse(score, pool["features"], count)]
      labelled = np.sort(np.concatenate([labelled, chosen]))


def plot(results: pd.DataFrame, path: str) -> None:
  fig = Figure(figsize=(10, 4), layout="constrained")
  for ax, measure, title in zip(fig.subplots(1, 2), ("macro_f1", "map"), ("test macro-F1", "mAP")):
    for (strategy, seed), rows in results.groupby(["strategy", "seed"]):
      ax.plot(rows["labelled"], rows[measure], marker="o" if strategy == "ranked" else "s",
              color="tab:orange" if strategy == "ranked" else "tab:blue",
              linestyle=("-", "--", ":", "-.")[seed % 4], label=f"{strategy}, seed {seed}")
    ax.set(xlabel="labelled photos", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
  FigureCanvasAgg(fig).print_png(path)


def main(argv):
  del argv
  began = time.time()
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  frame, _ = corpus.load_corpus(_DATA_DIR.value)
  names = corpus.label_columns(frame)
  targets = frame[names].to_numpy()
  images = decoded_images(frame, _IMAGE_SIZE.value,
                          os.path.join(_OUTPUT_DIR.value, f"images_{_IMAGE_SIZE.value}.npz"))
  pool, val, test = stratification.train_val_test_split(
      targets, _VAL_IMAGES.value / len(frame), _TEST_FRACTION.value, seed=0)
  parts = {"test": np.sort(test), "val": np.sort(val), "pool": np.sort(pool)}
  print(f"{len(frame)} photos, {len(names)} labels: test {len(parts['test'])}, validation "
        f"{len(parts['val'])}, pool {len(parts['pool'])}; images decoded in "
        f"{time.time() - began:.0f} s", flush=True)
  rows = [row for seed in range(_SEEDS.value)
          for row in run_seed(seed, images, targets, parts, names)]
  results = pd.DataFrame(rows)
  results.to_csv(os.path.join(_OUTPUT_DIR.value, "results.csv"), index=False)
  atomic_files.write_json(os.path.join(_OUTPUT_DIR.value, "results.json"), {
      "settings": {flag: flags.FLAGS[flag].value for flag in (
          "data_dir", "rounds", "seeds", "start", "add", "val_images", "test_fraction",
          "image_size", "width", "depth", "epochs", "batch_size")},
      "seconds": round(time.time() - began, 1), "rows": rows})
  plot(results, os.path.join(_OUTPUT_DIR.value, "active_loop.png"))
  print(results.pivot_table(index="labelled", columns="strategy",
                            values=["macro_f1", "map"]).round(4).to_string())
  print(f"wrote {_OUTPUT_DIR.value}/results.csv, results.json, active_loop.png in "
        f"{time.time() - began:.0f} s")


if __name__ == "__main__":
  app.run(main)
