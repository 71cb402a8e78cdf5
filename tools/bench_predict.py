"""Batch prediction speed: local mlc-predict against Beam with 1 and 2 local workers, in one run.

  # after mlc-train (configs/demo.py)
  PYTHONPATH=. python tools/bench_predict.py --model=saved_models/demo

Tags the same photos (default: the 5,000 untagged flickr14 photos) three ways,
each end to end as a user waits for it, model loading included: local
``prediction.predict_to_csv`` (what mlc-predict runs), and
``batch_prediction.predict_to_shards`` on Beam's in-process FnApiRunner with
one worker and with two worker processes (``--direct_num_workers=2
--direct_running_mode=multi_processing``). Each is also run on the first
``--small`` photos, so the fixed cost (start-up, model loading) and the cost
per photo separate: per photo = (time of all - time of small) / (photos
between). Prints photos/s, CPU seconds (this process and its finished worker
processes) and ratios to local; ratios measured in the same run are what to
compare. Prints the CPU model and the load average before and after.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import tempfile
import time

from absl import app, flags

from mlc_tf.serving import batch_prediction, prediction

_MODEL = flags.DEFINE_string("model", "saved_models/demo",
                             "An exported model (a SavedModel or a dir of versions).")
_IMAGES = flags.DEFINE_string(
    "images", os.path.join("..", "shared", "datasets", "flickr14-unlabeled", "images"),
    "A folder of photos.")
_SMALL = flags.DEFINE_integer("small",
                              200,
                              "Photos of the short runs that measure the fixed cost.",
                              lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size",
                                   64,
                                   "Local batch size, and Beam's largest batch.",
                                   lower_bound=1)

IN_PROCESS = ["--runner=FnApiRunner"]
TWO_PROCESSES = [*IN_PROCESS, "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _cpu_seconds() -> float:
  """CPU time of this process and of its finished children (Beam's worker processes)."""
  own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
      resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(run) -> tuple[int, float, float]:
  """(photos tagged, wall seconds, CPU seconds) of ``run()``, which returns the photos it tagged."""
  wall, cpu = time.perf_counter(), _cpu_seconds()
  tagged = run()
  return tagged, time.perf_counter() - wall, _cpu_seconds() - cpu


def _local(paths: list[str], out: str) -> int:
  predictor = prediction.load_predictor(_MODEL.value)
  return prediction.predict_to_csv(predictor, paths, os.path.join(out, "local.csv"),
                                   _BATCH_SIZE.value).written


def _beam(folder: str, out: str, pipeline_args: list[str]) -> int:
  summary = batch_prediction.predict_to_shards(_MODEL.value, [folder],
                                               os.path.join(out, "tags"),
                                               pipeline_args,
                                               max_batch_size=_BATCH_SIZE.value)
  return summary.counters["tagged"]


def _subset(paths: list[str], folder: str) -> str:
  """``folder`` holding links to ``paths``: a source both ways read alike."""
  os.makedirs(folder)
  for path in paths:
    os.symlink(os.path.abspath(path), os.path.join(folder, os.path.basename(path)))
  return folder


def main(argv):
  del argv
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  cpu_model = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
  cpu_model = next((line.split(":", 1)[1].strip()
                    for line in cpu_model.splitlines()
                    if line.startswith("Model name")), "unknown")
  print(f"CPU: {cpu_model}, {os.cpu_count()} cores; load average before: {os.getloadavg()}")
  paths = prediction.list_images([_IMAGES.value])
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    sources = {
        "all": (paths, os.path.abspath(_IMAGES.value)),
        "small": (paths[:_SMALL.value], _subset(paths[:_SMALL.value], os.path.join(tmp, "small")))
    }
    for size, (size_paths, folder) in sources.items():
      runs = {"local mlc-predict": lambda out: _local(size_paths, out),
              "Beam, 1 worker": lambda out: _beam(folder, out, IN_PROCESS),
              "Beam, 2 worker processes": lambda out: _beam(folder, out, TWO_PROCESSES)}
      for name, run in runs.items():
        out = tempfile.mkdtemp(dir=tmp)
        results[name, size] = _timed(lambda: run(out))
        print(
            f"{name:26s} {size:5s}: {results[name, size][0]} photos in "
            f"{results[name, size][1]:.1f} s",
            flush=True)
  print(f"load average after: {os.getloadavg()}")
  print(
      f"\n{len(paths)} photos (fixed cost from the first {_SMALL.value}), batch "
      f"{_BATCH_SIZE.value}, "
      f"model {_MODEL.value}")
  print(
      "| way | photos/s | vs local | wall s | CPU s | fixed s | ms/photo after it | CPU ms/photo |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|")
  local_rate = results["local mlc-predict", "all"][0] / results["local mlc-predict", "all"][1]
  for name in ("local mlc-predict", "Beam, 1 worker", "Beam, 2 worker processes"):
    (tagged, wall, cpu), (small_tagged, small_wall, _) = results[name, "all"], results[name,
                                                                                       "small"]
    per_photo = (wall - small_wall) / max(tagged - small_tagged, 1)
    fixed = small_wall - per_photo * small_tagged
    print(
        f"| {name} | {tagged / wall:.0f} | {tagged / wall / local_rate:.2f}x | {wall:.1f} | "
        f"{cpu:.1f} | "
        f"{fixed:.1f} | {1000 * per_photo:.2f} | {1000 * cpu / tagged:.2f} |")


if __name__ == "__main__":
  app.run(main)
