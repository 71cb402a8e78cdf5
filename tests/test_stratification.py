import numpy as np
import pytest

from mlc_tf.data import stratification


def _targets(n=300, seed=0):
  rng = np.random.default_rng(seed)
  y = (rng.random((n, 5)) < [0.5, 0.2, 0.1, 0.05, 0.03]).astype(int)
  y[rng.random(n) < 0.3] = 0  # a share of images with no label at all
  return y


@pytest.mark.parametrize("num_folds", [2, 5])
def test_kfold_partitions_and_keeps_label_proportions(num_folds):
  y = _targets()
  folds = stratification.kfold(y, num_folds, seed=0)
  assert len(folds) == num_folds
  together = np.concatenate(folds)
  assert sorted(together) == list(range(len(y)))  # every image in exactly one fold
  overall = y.mean(axis=0)
  empty_share = (y.sum(axis=1) == 0).mean()
  for fold in folds:
    assert abs(len(fold) - len(y) / num_folds) <= 2
    # Each label's positives are spread evenly: within one image of an exact share.
    np.testing.assert_array_less(np.abs(y[fold].sum(axis=0) - y.sum(axis=0) / num_folds),
                                 1.01 + 1e-9)
    assert abs((y[fold].sum(axis=1) == 0).mean() - empty_share) < 0.05
    np.testing.assert_allclose(y[fold].mean(axis=0), overall, atol=0.03)


def test_kfold_is_reproducible_and_rejects_bad_counts():
  y = _targets(60)
  assert all(np.array_equal(a, b) for a, b in zip(stratification.kfold(y, 3, 7),
                                                  stratification.kfold(y, 3, 7)))
  with pytest.raises(ValueError, match="at least 2"):
    stratification.kfold(y, 1, 0)
  with pytest.raises(ValueError, match="only 60 images"):
    stratification.kfold(y, 61, 0)
