"""The built-in demo corpus: multi-label 64x64 scenes of scikit-learn's digits.

Generated offline and deterministically from the handwritten digits that ship
inside scikit-learn, written in the real corpus's layout (``images/im<ID>.jpg``
+ ``annotations/<label>.txt``) and cached. It has the real corpus's
difficulties in small: digits 0-5 are the labels ("zero" … "five"); "one" is
in about half of the images (the over-represented label, like "people"),
"five" in about 3 % (the rare one, like "baby"); about 40 % of the images show
only unlabelled digits 6-9 and so have no label; about 10 % are grayscale
JPEGs; and a few labels are wrong.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from PIL import Image

from mlc_tf import atomic_files
from mlc_tf.data import corpus as corpus_lib

VERSION = "1"
LABELS = ("zero", "one", "two", "three", "four", "five")
IMAGE_SIZE = 64
DIGIT_SIZE = 24
# Chance that a labelled scene shows each labelled digit; "one" dominates, "five" is rare.
LABEL_PROBABILITY = (0.25, 0.83, 0.2, 0.15, 0.1, 0.05)
NO_LABEL_SHARE = 0.4
GRAYSCALE_SHARE = 0.1
LABEL_NOISE = 0.02


def default_cache_dir() -> str:
  return os.path.join(os.path.expanduser("~"), ".cache", "mlc_tf")


def _scene(rng: np.random.Generator, digits_by_class: list[np.ndarray],
           classes: list[int]) -> Image.Image:
  background = rng.integers(0, 120, size=3)
  canvas = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.float32)
  canvas[:] = background
  canvas += rng.normal(0, 12, size=canvas.shape)
  slots = rng.permutation(4)[:len(classes)]  # 2x2 grid, jittered, so digits do not cover each other
  for cls, slot in zip(classes, slots):
    pool = digits_by_class[cls]
    digit = pool[rng.integers(len(pool))] / 16.0
    size = int(rng.integers(DIGIT_SIZE - 6, DIGIT_SIZE + 6))
    glyph = np.asarray(
        Image.fromarray((digit * 255).astype(np.uint8)).resize(
            (size, size), Image.BILINEAR), np.float32) / 255.0
    colour = rng.integers(130, 256, size=3).astype(np.float32)
    half = IMAGE_SIZE // 2
    y = (slot // 2) * half + int(rng.integers(0, max(1, half - size + 1)))
    x = (slot % 2) * half + int(rng.integers(0, max(1, half - size + 1)))
    y, x = min(y, IMAGE_SIZE - size), min(x, IMAGE_SIZE - size)
    region = canvas[y:y + size, x:x + size]
    region[:] = region * (1 - glyph[..., None]) + colour * glyph[..., None]
  return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def generate(root: str, num_images: int = 1500, seed: int = 0) -> None:
  """Writes a fresh demo corpus under ``root`` (which must not exist yet)."""
  from sklearn.datasets import load_digits  # the data ships inside scikit-learn

  digits = load_digits()
  digits_by_class = [digits.images[digits.target == c] for c in range(10)]
  rng = np.random.default_rng(seed)
  os.makedirs(os.path.join(root, "images"))
  rows = []
  for image_id in range(1, num_images + 1):
    if rng.random() < NO_LABEL_SHARE:
      present = []
      distractors = list(rng.choice([6, 7, 8, 9], size=int(rng.integers(1, 3)), replace=False))
    else:
      present = [c for c, p in enumerate(LABEL_PROBABILITY) if rng.random() < p
                ] or [int(rng.integers(0, 6))]
      present = present[:3]
      distractors = list(
          rng.choice([6, 7, 8, 9], size=int(rng.integers(0, 4 - len(present))), replace=False))
    image = _scene(rng, digits_by_class, [*present, *distractors])
    if rng.random() < GRAYSCALE_SHARE:
      image = image.convert("L")
    image.save(os.path.join(root, "images", f"im{image_id}.jpg"), quality=90)
    target = np.zeros(len(LABELS), np.uint8)
    target[present] = 1
    flips = rng.random(len(LABELS)) < LABEL_NOISE / len(LABELS) * 3
    rows.append(np.where(flips, 1 - target, target))
  frame = pd.DataFrame(np.stack(rows), index=pd.Index(range(1, num_images + 1), name="image_id"),
                       columns=list(LABELS))
  corpus_lib.write_corpus(root, frame)
  with open(os.path.join(root, "README.md"), "w") as f:
    f.write(__doc__)


def ensure_demo_corpus(cache_dir: str | None = None, num_images: int = 1500, seed: int = 0) -> str:
  """Returns the demo corpus's directory, generating it once (atomically) if needed."""
  cache_dir = cache_dir or default_cache_dir()
  root = os.path.join(cache_dir, f"digits-v{VERSION}-n{num_images}-s{seed}")
  if os.path.isdir(root):
    return root
  os.makedirs(cache_dir, exist_ok=True)
  with atomic_files.staged_beside(root) as staged:
    generate(staged, num_images=num_images, seed=seed)
    try:
      os.rename(staged, root)  # not write_aside's overwriting rename: the first copy stays
    except OSError:  # another process won the race; its copy is identical
      if not os.path.isdir(root):
        raise
  return root
