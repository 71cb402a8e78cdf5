"""Soak test: many threads call the loaded SavedModel for minutes; memory stays flat, every answer
is right.

  PYTHONPATH=. python tools/soak_serving.py --saved_model=saved_models/demo/1 --threads=8
  --duration_s=180

Each thread sends batches of 1..--max_batch elements drawn from the corpus'
images and from invalid inputs (text, empty, truncated JPEGs, a header
announcing a 60000 x 60000 PNG) until --duration_s or --max_requests is
reached. Every answer is compared with the answer the same image got alone
before the soak (probabilities to 1e-5, decisions, labels, valid). The
process' resident memory is sampled every second; its growth over the
second half of the run is the "flat" figure. Exits 1 on any error, wrong
answer or growth above --max_growth_mb.
"""

from __future__ import annotations

import struct
import threading
import time
import zlib

import numpy as np
import tensorflow as tf
from absl import app, flags

from mlc_tf.data import builtin, corpus

_SAVED_MODEL = flags.DEFINE_string("saved_model",
                                   None,
                                   "A version folder: saved_models/<name>/<version>.",
                                   required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Corpus to take images from. Default: the built-in demo corpus.")
_IMAGES = flags.DEFINE_integer("images", 200, "Distinct corpus images to draw from.")
_THREADS = flags.DEFINE_integer("threads", 8, "Concurrent callers.", lower_bound=1)
_DURATION_S = flags.DEFINE_float("duration_s", 180.0, "Stop after this many seconds.")
_MAX_REQUESTS = flags.DEFINE_integer("max_requests", 1_000_000,
                                     "Stop after this many requests in all.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 16, "Largest batch a request carries.",
                                  lower_bound=1)
_MAX_GROWTH_MB = flags.DEFINE_float("max_growth_mb", 50.0,
                                    "Resident memory growth allowed over the second half.")


def resident_mb() -> float:
  """This process' resident set size (VmRSS) in MB."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  raise RuntimeError("no VmRSS in /proc/self/status")


def invalid_inputs(jpeg: bytes) -> list[bytes]:
  """Inputs that must come back valid=false."""
  ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
  huge_png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(
      ">I", zlib.crc32(ihdr))
  return [b"", b"plain text, not an image", jpeg[:len(jpeg) // 2], huge_png]


class Soak:
  """Shared counters and the reference answers the threads check against."""

  def __init__(self, signature, elements, reference):
    self.signature, self.elements, self.reference = signature, elements, reference
    self.lock = threading.Lock()
    self.requests = self.answers = self.wrong = self.errors = 0
    self.latencies: list[float] = []
    self.first_problem = ""

  def problem(self, message):
    with self.lock:
      self.first_problem = self.first_problem or message

  def worker(self, seed: int, deadline: float):
    rng = np.random.default_rng(seed)
    while time.monotonic() < deadline:
      with self.lock:
        if self.requests >= _MAX_REQUESTS.value:
          return
        self.requests += 1
      picks = rng.integers(0, len(self.elements), size=rng.integers(1, _MAX_BATCH.value + 1))
      start = time.perf_counter()
      try:
        out = self.signature(image_bytes=tf.constant([self.elements[i] for i in picks]))
        out = {k: v.numpy() for k, v in out.items()}
      # Counted and reported: a soak must see every failure, not stop at the first.
      except Exception as error:
        with self.lock:
          self.errors += 1
        self.problem(f"request raised {type(error).__name__}: {error}")
        continue
      elapsed = time.perf_counter() - start
      wrong = 0
      for row, i in enumerate(picks):
        want = self.reference[i]
        if not (out["valid"][row] == want["valid"] and
                np.array_equal(out["decisions"][row], want["decisions"]) and
                np.array_equal(out["labels"][row], want["labels"]) and
                np.allclose(out["probabilities"][row], want["probabilities"], atol=1e-5)):
          wrong += 1
          self.problem(
              f"element {i} answered {out['probabilities'][row]}, alone it got "
              f"{want['probabilities']}")
      with self.lock:
        self.answers += len(picks)
        self.wrong += wrong
        self.latencies.append(elapsed)


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or builtin.ensure_demo_corpus()
  frame, _ = corpus.load_corpus(data_dir)
  paths = frame[corpus.PATH_COLUMN].tolist()[:_IMAGES.value]
  images = [open(path, "rb").read() for path in paths]
  elements = images + invalid_inputs(images[0])
  signature = tf.saved_model.load(_SAVED_MODEL.value).signatures["serving_default"]
  reference = [{
      k: v.numpy()[0] for k, v in signature(image_bytes=tf.constant([e])).items()
  } for e in elements]
  if not all(r["valid"] for r in reference[:len(images)]) or any(
      r["valid"] for r in reference[len(images):]):
    raise SystemExit(
        "soak_serving: error: the reference answers disagree with the corpus (valid/invalid)")

  soak = Soak(signature, elements, reference)
  memory = [(0.0, resident_mb())]
  start = time.monotonic()
  deadline = start + _DURATION_S.value
  threads = [
      threading.Thread(target=soak.worker, args=(seed, deadline)) for seed in range(_THREADS.value)
  ]
  for thread in threads:
    thread.start()
  while any(thread.is_alive() for thread in threads):
    time.sleep(1.0)
    memory.append((time.monotonic() - start, resident_mb()))
  for thread in threads:
    thread.join()
  elapsed = time.monotonic() - start

  times, rss = np.array(memory).T
  second_half = times >= elapsed / 2
  growth = rss[second_half][-1] - rss[second_half][0]
  slope = np.polyfit(times[second_half], rss[second_half],
                     1)[0] * 60 if second_half.sum() > 2 else float("nan")
  latencies = np.asarray(soak.latencies) * 1000
  print(
      f"saved model: {_SAVED_MODEL.value}; {len(images)} images + {len(elements) - len(images)} "
      "invalid inputs")
  print(f"threads: {_THREADS.value}, duration: {elapsed:.0f} s, requests: {soak.requests}, "
        f"elements answered: {soak.answers} ({soak.answers / elapsed:.0f}/s)")
  if len(latencies):
    print(
        f"request latency ms: p50 {np.percentile(latencies, 50):.1f}, p99 "
        f"{np.percentile(latencies, 99):.1f}, "
        f"max {latencies.max():.1f}")
  print(f"errors: {soak.errors}, wrong answers: {soak.wrong}")
  print(
      f"resident memory MB: start {rss[0]:.0f}, max {rss.max():.0f}, end {rss[-1]:.0f}; second "
      "half: "
      f"{growth:+.1f} MB ({slope:+.2f} MB/min fitted)")
  marks = [
      rss[np.searchsorted(times, elapsed * f, side="left").clip(max=len(rss) - 1)]
      for f in np.linspace(0, 1, 11)
  ]
  print("resident memory MB at each tenth of the run: " + " ".join(f"{m:.0f}" for m in marks))
  if soak.first_problem:
    print(f"first problem: {soak.first_problem}")
  failed = soak.errors or soak.wrong or growth > _MAX_GROWTH_MB.value
  print("FAIL" if failed else "PASS")
  raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
  app.run(main)
