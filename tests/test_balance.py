import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from mlc_tf.data import balance, pipeline

LABELS = ["dog", "male", "people"]


def test_repeat_factors_follow_lvis_formula():
  # dog in 1 of 10 images, people in 5 of 10: with t = 0.4,
  # r_dog = sqrt(0.4 / 0.1) = 2, r_people = 1.
  targets = np.zeros((10, 3))
  targets[0, 0] = 1
  targets[:5, 2] = 1
  factors = balance.repeat_factors(targets, 0.4)
  assert factors[0] == pytest.approx(2.0) and np.allclose(factors[1:], 1.0)
  assert np.allclose(balance.repeat_factors(targets, 0.0), 1.0)


def test_under_sampling_targets_images_with_only_over_represented_labels():
  targets = np.array([[0, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0]])
  only = balance.only_over_represented(targets, LABELS, ["male", "people"])
  np.testing.assert_array_equal(only, [True, False, True, False, False])
  cfg = ml_collections.ConfigDict(dict(over_represented=["male", "people"], under_fraction=0.75,
                                       repeat_threshold=0.0))
  np.testing.assert_allclose(balance.expected_counts(targets, LABELS, cfg), [0.25, 1, 0.25, 1, 1])
  cfg.under_fraction = 0.0
  assert balance.expected_counts(targets, LABELS, cfg) is None
  with pytest.raises(ValueError, match="not labels"):
    balance.only_over_represented(targets, LABELS, ["person"])


def test_resample_draws_counts_with_the_expected_mean_each_epoch():
  counts = np.array([0.0, 1.0, 2.5, 0.5])
  ds = balance.resample(tf.data.Dataset.range(4), counts, seed=3)
  epochs = [np.bincount(list(ds.as_numpy_iterator()), minlength=4) for _ in range(200)]
  seen = np.array(epochs)
  assert (seen[:, 0] == 0).all() and (seen[:, 1] == 1).all() and set(seen[:, 2]) == {2, 3}
  np.testing.assert_allclose(seen.mean(axis=0), counts, atol=0.12)
  assert len({tuple(e) for e in epochs}) > 1  # fresh draws every epoch
  repeated = np.bincount(list(balance.resample(tf.data.Dataset.range(4), counts, seed=3).repeat(50)
                              .as_numpy_iterator()), minlength=4)
  assert repeated[2] not in (100, 150) and abs(repeated[2] - 125) < 25  # repeat() draws afresh too
  again = balance.resample(tf.data.Dataset.range(4), counts, seed=3)
  np.testing.assert_array_equal(np.bincount(list(again.as_numpy_iterator()), minlength=4),
                                epochs[0])


def test_make_dataset_balances_training_data_only(tiny_corpus):
  from mlc_tf.data import corpus as corpus_lib
  root, _ = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root)
  labels = corpus_lib.label_columns(frame)
  counts = np.zeros(len(frame))
  counts[:3] = 2.0
  kwargs = dict(image_size=8, batch_size=4, sample_counts=counts, cache=False)
  train = pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(), training=True,
                                **kwargs)
  assert sum(len(y) for _, y in train.take(10)) == 40  # an endless stream of the 3 kept images
  evaluation = pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(),
                                     training=False, **kwargs)
  assert sum(len(y) for _, y in evaluation) == len(frame)
  with pytest.raises(ValueError, match="sample counts"):
    pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(), training=True,
                          image_size=8, batch_size=4, sample_counts=counts[:-1])
