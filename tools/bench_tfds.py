"""Images/s of the input pipeline from prepared TFDS records vs from the folder of JPEGs, cold and
warm.

  PYTHONPATH=. python tools/bench_tfds.py --data_dir=../shared/datasets/flickr14

Prepares ``tfds:mlc_corpus`` records of the corpus in a temporary TFDS data
dir (timed, once), then per round and per source: drops the source's files
from the OS page cache (``posix_fadvise(DONTNEED)``, no root needed), runs
one pass (cold), and runs it again (warm). A pass is what training's first
epoch does before the cache: read -> ``decode_and_resize`` -> batch (no
augmentation, no model), over every image; "read only" passes stop at the
encoded bytes. A raw Python read of the files, cold and warm, shows that the
eviction worked. Prints the median over rounds and the TFDS/folder ratios.
About 8 minutes on the flickr14 corpus (7,683 images) on a shared 2-core CPU.
"""

from __future__ import annotations

import glob
import os
import shutil
import statistics
import tempfile
import time

import tensorflow as tf
from absl import app, flags

from mlc_tf import config as config_lib
from mlc_tf.data import pipeline, sources

_DATA_DIR = flags.DEFINE_string("data_dir", "../shared/datasets/flickr14",
                                "Corpus folder (images/ + annotations/).")
_TFDS_DATA_DIR = flags.DEFINE_string(
    "tfds_data_dir", None, "Where to prepare the records. Default: a temporary "
    "folder, removed at the end.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Images are resized to this size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Cold+warm rounds per source; the median is reported.")


def evict(paths: list[str]) -> None:
  """Drops the files' pages from the OS page cache (written pages are flushed first)."""
  for path in paths:
    fd = os.open(path, os.O_RDONLY)
    try:
      os.fsync(fd)
      os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
      os.close(fd)


def raw_read_seconds(paths: list[str]) -> float:
  start = time.perf_counter()
  for path in paths:
    with open(path, "rb") as f:
      f.read()
  return time.perf_counter() - start


def pass_seconds(dataset) -> float:
  start = time.perf_counter()
  for _ in dataset:
    pass
  return time.perf_counter() - start


def main(argv):
  del argv
  tfds_dir = _TFDS_DATA_DIR.value or tempfile.mkdtemp(prefix="mlc_bench_tfds_")
  try:
    data = config_lib.base_config().data
    data.tfds_data_dir, data.tfds_manual_dir = tfds_dir, _DATA_DIR.value
    folder = sources.open_source(f"folder:{_DATA_DIR.value}", data)
    start = time.perf_counter()
    records = sources.open_source("tfds:mlc_corpus", data)
    prepare_s = time.perf_counter() - start
    num_images = len(records.frame)
    record_files = sorted(glob.glob(os.path.join(records.builder.data_dir, "*.tfrecord*")))
    jpeg_files = list(folder.frame["path"])
    size_mb = {name: sum(os.path.getsize(p) for p in files) / 1e6
               for name, files in (("folder", jpeg_files), ("tfds", record_files))}
    print(
        f"corpus {_DATA_DIR.value}: {len(folder.frame)} JPEG files, {size_mb['folder']:.1f} MB; "
        f"TFDS records: {num_images} images in {len(record_files)} files, {size_mb['tfds']:.1f} "
        "MB, "
        f"prepared (or opened) in {prepare_s:.1f} s")

    def images(name):
      source = folder if name == "folder" else records
      return source.images(source.frame), source.frame[source.label_names].to_numpy()

    def decode_pass(name):
      paths_or_bytes, labels = images(name)
      return pipeline.make_dataset(paths_or_bytes, labels, image_size=_IMAGE_SIZE.value,
                                   batch_size=_BATCH_SIZE.value, training=False, cache=False)

    def read_pass(name):
      paths_or_bytes, _ = images(name)
      if name == "folder":
        return tf.data.Dataset.from_tensor_slices(paths_or_bytes).map(
            tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE).batch(_BATCH_SIZE.value)
      return paths_or_bytes.batch(_BATCH_SIZE.value)

    files = {"folder": jpeg_files, "tfds": record_files}
    load_before = os.getloadavg()[0]
    timings = {}  # (what, source, cold|warm) -> [seconds]
    for _ in range(_ROUNDS.value):
      for name in ("folder", "tfds"):
        evict(files[name])
        cold = raw_read_seconds(files[name])
        timings.setdefault(("raw Python read", name, "cold"), []).append(cold)
        timings.setdefault(("raw Python read", name, "warm"),
                           []).append(raw_read_seconds(files[name]))
        for what, make in (("read only", read_pass), ("read + decode_and_resize", decode_pass)):
          evict(files[name])
          timings.setdefault((what, name, "cold"), []).append(pass_seconds(make(name)))
          timings.setdefault((what, name, "warm"), []).append(pass_seconds(make(name)))

    print(
        f"\nimages/s, median of {_ROUNDS.value} rounds, {_IMAGE_SIZE.value} px, batch "
        f"{_BATCH_SIZE.value}, "
        f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} "
        "after\n")
    print("| pass | cache | folder of JPEGs | TFDS records | TFDS / folder |")
    print("|---|---|---:|---:|---:|")
    for what in ("raw Python read", "read only", "read + decode_and_resize"):
      for state in ("cold", "warm"):
        rate = {
            name: num_images / statistics.median(timings[(what, name, state)])
            for name in ("folder", "tfds")
        }
        print(f"| {what} | {state} | {rate['folder']:,.0f} | {rate['tfds']:,.0f} | "
              f"{rate['tfds'] / rate['folder']:.2f} |")
  finally:
    if not _TFDS_DATA_DIR.value:
      shutil.rmtree(tfds_dir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
