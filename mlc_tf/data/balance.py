"""Re-balancing the training set in tf.data: under-sampling and repeat-factor over-sampling.

Both are expressed as one expected count per training image (how many times
it appears in an epoch, on average); ``resample`` draws each image's count
afresh every epoch (``floor(e)`` copies plus one more with probability
``e - floor(e)``), so a different random subset is dropped or repeated each time.

- Under-sampling (the Flickr study's balancing): an image whose labels are all
  over-represented ones (e.g. only people/male/female) is kept with
  probability ``1 - under_fraction``.
- Repeat-factor sampling (Gupta et al., LVIS 2019): label ``c`` present in a
  fraction ``f_c`` of the images gets ``r_c = max(1, sqrt(t / f_c))``, and an
  image is repeated ``max_c r_c`` times over its labels, so rare labels are
  seen more often without touching the frequent ones.

Targets may be soft (a teacher's probabilities, ``mlc_tf.train.self_training``):
an image carries a label when its target is at least 0.5, and a label's
frequency is its mean target.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections
import numpy as np
import tensorflow as tf

PRESENT = 0.5  # a (soft) target from which the image counts as carrying the label

def repeat_factors(targets: np.ndarray, threshold: float) -> np.ndarray:
  """Returns each image's LVIS repeat factor.

  That is ``max over its labels of max(1, sqrt(threshold / f_label))``; images without labels get 1,
  and ``threshold=0`` gives all ones.
  """
  targets = np.asarray(targets, np.float64)
  if threshold <= 0:
    return np.ones(len(targets))
  frequency = targets.mean(axis=0)
  per_label = np.maximum(1.0, np.sqrt(threshold / np.maximum(frequency, 1e-12)))
  return np.max(np.where(targets >= PRESENT, per_label, 1.0), axis=1, initial=1.0)


def only_over_represented(targets: np.ndarray, label_names: Sequence[str],
                          over_represented: Sequence[str]) -> np.ndarray:
  """Tells per image whether it has labels and all of them are in ``over_represented``."""
  unknown = sorted(set(over_represented) - set(label_names))
  if unknown:
    raise ValueError(
        f"over-represented label(s) {unknown} are not labels of the corpus: {list(label_names)}")
  targets = np.asarray(targets) >= PRESENT
  over = np.isin(np.asarray(label_names), list(over_represented))
  return targets.any(axis=1) & ~(targets & ~over).any(axis=1)


def expected_counts(targets: np.ndarray, label_names: Sequence[str],
                    cfg: ml_collections.ConfigDict) -> np.ndarray | None:
  """Returns the expected epoch count per training image under ``cfg`` (config.balance).

  None when balancing is off.
  """
  fraction = cfg.get("under_fraction", 0.0)
  threshold = cfg.get("repeat_threshold", 0.0)
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"balance.under_fraction must be in [0, 1), got {fraction}")
  if not fraction and not threshold:
    return None
  counts = repeat_factors(targets, threshold)
  if fraction:
    counts = np.where(only_over_represented(targets, label_names, cfg.get("over_represented", ())),
                      counts * (1.0 - fraction), counts)
  return counts


def resample(ds: tf.data.Dataset, counts: np.ndarray, seed: int) -> tf.data.Dataset:
  """Repeats element ``i`` of ``ds`` a random number of times with mean ``counts[i]``.

  The draws are new each epoch.
  """
  counts = np.asarray(counts, np.float32)
  if counts.ndim != 1 or (counts < 0).any():
    raise ValueError("sample counts must be a 1-D array of non-negative numbers")
  randomness = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

  def copies(example, count, random_bits):
    uniform = tf.cast(random_bits % (1 << 24), tf.float32) / float(1 << 24)
    whole = tf.floor(count)
    n = tf.cast(whole + tf.cast(uniform < count - whole, tf.float32), tf.int64)
    return tf.data.Dataset.from_tensors(example).repeat(n)

  return tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(counts),
                             randomness).flat_map(copies)
