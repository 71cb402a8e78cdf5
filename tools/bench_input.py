"""Images/s of the tf.data input pipeline against a per-image PIL + NumPy loader, in the same run.

  python tools/bench_input.py --data_dir=../shared/datasets/flickr14 --num_images=2000

Both read the same images (the first --num_images of the corpus, read once
beforehand so that both find them in the page cache: the disk is not
measured) and produce the same float32 batches: decoded, resized to
--image_size, flipped horizontally at random.

The reference is written the way the study's PyTorch-tutorial loader was: a
``Dataset`` whose ``__getitem__`` opens one file with PIL, converts it to
RGB, resizes it and flips it with NumPy, and a ``DataLoader`` with
``num_workers=0`` that stacks items into batches in the main process. The
tf.data pipeline is mlc_tf's own (``mlc_tf.data.pipeline.make_dataset``):
first epoch (decode + resize + augment, filling the cache) and cached epochs
(augment only). Prints images/s for each and the ratios, per second of
wall-clock time (what a user waits; it follows the load of other processes
sharing the CPUs) and per second of this process's CPU time (all threads:
what the work costs, whatever the load).

Then the first epoch's per-image CPU cost by stage, each stage a tf.data map
over the same files with the stages before it (read; a full decode; the
antialiased resize), timed after its first batch so that tracing is left
out, and against them what ``decode_and_resize`` costs after the read (its
header checks, a JPEG decoded at a reduced DCT scale, a resize where one is
left): where the decode's time goes.
"""

from __future__ import annotations

import os
import sys

import ml_collections
import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mlc_tf.data import corpus as corpus_lib  # noqa: E402
from mlc_tf.data import pipeline  # noqa: E402
from tools import timing  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", "../shared/datasets/flickr14",
                                "Corpus directory (images/ + annotations/).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 2000, "Images to load per epoch.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Side of the resized images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_CACHED_EPOCHS = flags.DEFINE_integer("cached_epochs", 3, "tf.data epochs timed after the first.")


class TutorialDataset:
  """A map-style dataset as PyTorch tutorials write one: one image per ``__getitem__``, PIL + NumPy.
  """

  def __init__(self, paths: np.ndarray, labels: np.ndarray, image_size: int, seed: int = 0):
    self.paths, self.labels, self.image_size = paths, labels, image_size
    self.rng = np.random.default_rng(seed)

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
    image = Image.open(self.paths[index]).convert("RGB").resize((self.image_size, self.image_size),
                                                                 Image.BILINEAR)
    pixels = np.asarray(image, np.float32)
    if self.rng.random() < 0.5:
      pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels), self.labels[index].astype(np.float32)


def tutorial_loader(dataset: TutorialDataset, batch_size: int, seed: int):
  """``DataLoader(dataset, batch_size, shuffle=True, num_workers=0)``: shuffled indices, stacked
  in-process."""
  order = np.random.default_rng(seed).permutation(len(dataset))
  for start in range(0, len(order), batch_size):
    items = [dataset[i] for i in order[start:start + batch_size]]
    yield np.stack([x for x, _ in items]), np.stack([y for _, y in items])


def images_per_second(batches) -> tuple[float, float]:
  """Images per wall-clock second and per CPU second of this process, over one pass of ``batches``.
  """
  with timing.Rate() as rate:
    for x, _ in batches:
      rate.work += len(x)
  return rate.per_wall, rate.per_cpu


def stage_costs(paths: np.ndarray, size: int, batch: int) -> list[tuple[str, float]]:
  """(stage, ms of CPU per image): a full decode's path by stage, then ``decode_and_resize`` after
  the read."""
  def full_decode(path):
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

  def cost(stage) -> float:  # ms of CPU per image of a map of ``stage`` over the files
    iterator = iter(
        tf.data.Dataset.from_tensor_slices(paths).map(
            stage, num_parallel_calls=pipeline.AUTOTUNE).batch(batch).prefetch(pipeline.AUTOTUNE))
    counted = len(next(iterator))  # traced, and started: the rest is timed
    with timing.Rate(len(paths) - counted) as rate:
      for _ in iterator:
        pass
    return 1e3 / rate.per_cpu

  read, decoded, resized = (
      cost(tf.io.read_file), cost(full_decode),
      cost(lambda path: pipeline.resize(tf.cast(full_decode(path), tf.float32), size)))
  ours = cost(lambda path: pipeline.decode_and_resize(tf.io.read_file(path), size))
  return [("read the file", read), ("full decode", decoded - read),
          ("antialiased resize of the full decode", resized - decoded),
          ("decode_and_resize (checks, DCT-scaled decode, resize)", ours - read)]


def main(argv):
  del argv
  frame, _ = corpus_lib.load_corpus(_DATA_DIR.value)
  frame = frame.iloc[:_NUM_IMAGES.value]
  paths = frame[corpus_lib.PATH_COLUMN].to_numpy()
  labels = frame[corpus_lib.label_columns(frame)].to_numpy()
  for path in paths:  # page cache: neither loader pays for the disk
    with open(path, "rb") as f:
      f.read()
  size, batch = _IMAGE_SIZE.value, _BATCH_SIZE.value
  print(f"{len(paths)} images of {_DATA_DIR.value}, resized to {size}x{size}, batches of {batch}, "
        f"{os.cpu_count()} CPUs")

  def run_reference() -> tuple[float, float]:
    return images_per_second(tutorial_loader(TutorialDataset(paths, labels, size), batch, seed=0))
  before = np.array(run_reference())

  augment = ml_collections.ConfigDict({"flip": "horizontal"})
  dataset = pipeline.make_dataset(paths, labels, image_size=size, batch_size=batch, training=True,
                                  augment=augment, seed=0, cache=True)
  first = np.array(images_per_second(dataset))
  cached = np.mean([images_per_second(dataset) for _ in range(_CACHED_EPOCHS.value)], axis=0)
  after = np.array(run_reference())
  reference = (before + after) / 2  # timed before and after tf.data, so that varying load hits both
  print(f"{'':52s} images/s wall   images/CPU-s   vs PIL (wall, CPU-s)")
  print(
      f"{'PIL + NumPy loader (tutorial Dataset, num_workers=0)':52s} {reference[0]:14.0f} "
      f"{reference[1]:14.0f}"
      f"   (wall before/after: {before[0]:.0f}/{after[0]:.0f})")
  for name, rate in (("tf.data, first epoch (decode + resize + flip)", first),
                     (f"tf.data, cached epochs (flip only), mean of {_CACHED_EPOCHS.value}",
                      cached)):
    print(
        f"{name:52s} {rate[0]:14.0f} {rate[1]:14.0f}   {rate[0] / reference[0]:.2f}x, "
        f"{rate[1] / reference[1]:.2f}x")
  print(f"first epoch by stage, ms of CPU per image (after the first batch; PIL loader: "
        f"{1e3 / reference[1]:.3f} for all of its work)")
  for name, cost in stage_costs(paths, size, batch):
    print(f"  {name:50s} {cost:6.3f}")


if __name__ == "__main__":
  app.run(main)
