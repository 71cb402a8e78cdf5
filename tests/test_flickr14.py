"""Smoke test on a handful of real flickr14 images (skipped where ../shared is absent; fails under
CI)."""


import numpy as np

import mlc_tf.configs.common as mcc
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline

FLICKR14_LABELS = list(mcc.FLICKR14_LABELS)


def test_real_corpus_loads_and_decodes(flickr14_dir):
  frame, audit = corpus_lib.load_corpus(flickr14_dir)
  assert corpus_lib.label_columns(frame) == FLICKR14_LABELS
  assert len(frame) == 7683 and audit.missing_images == []
  assert (frame[FLICKR14_LABELS].sum(axis=1) >= 1).all()  # this copy holds labelled images only
  counts = frame[FLICKR14_LABELS].sum()
  assert counts["people"] == 4754 and counts["baby"] == 60

  sample = frame.sample(16, random_state=0)
  ds = pipeline.make_dataset(sample["path"].to_numpy(), sample[FLICKR14_LABELS].to_numpy(),
                             image_size=64, batch_size=16, training=False, cache=False)
  x, y = next(iter(ds))
  assert x.shape == (16, 64, 64, 3) and np.isfinite(x.numpy()).all() and float(
      x.numpy().max()) > 100
  np.testing.assert_array_equal(y.numpy(), sample[FLICKR14_LABELS].to_numpy())
