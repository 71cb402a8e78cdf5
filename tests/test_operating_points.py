"""Threshold policies, prevalence files and the prior-shift maths
(mlc_tf/evaluate/operating_points.py)."""

import numpy as np
import pytest

from mlc_tf.evaluate import metrics
from mlc_tf.evaluate import operating_points as op

NAMES = ["cat", "dog", "sun"]


def scored_labels(rows=400, seed=0):
  """Targets with prevalences 0.5/0.2/0.05 and informative but noisy probabilities."""
  rng = np.random.default_rng(seed)
  y = (rng.random((rows, 3)) < [0.5, 0.2, 0.05]).astype(np.int32)
  return y, np.clip(0.4 * y + 0.6 * rng.random((rows, 3)), 0, 1)


def test_policies_parse_with_defaults_and_per_label_overrides():
  policies = op.parse_policies(["recall:0.8", "dog=precision:0.9", "sun=0.35"], NAMES)
  assert [str(p) for p in policies] == ["recall:0.8", "precision:0.9", "0.35"]
  assert [str(p) for p in op.parse_policies([], NAMES)] == ["f1"] * 3
  for bad in (["precision"], ["precision:1.5"], ["recall:0"], ["1.2"], ["best"], ["bird=f1"]):
    with pytest.raises(ValueError):
      op.parse_policies(bad, NAMES)


def test_f1_policy_is_trainings_calibration_and_targets_are_met_or_reported():
  y, probs = scored_labels()
  f1 = op.choose_thresholds(y, probs, op.parse_policies(["f1"], NAMES), NAMES)
  np.testing.assert_array_equal(f1.thresholds, metrics.f1_optimal_thresholds(y, probs))

  points = op.choose_thresholds(y, probs, op.parse_policies(["precision:0.9", "dog=recall:0.8",
                                                             "sun=0.3"], NAMES),
                                NAMES)
  decided = metrics.decide(probs, points.thresholds)
  precision_cat = (decided[:, 0] & y[:, 0]).sum() / decided[:, 0].sum()
  assert precision_cat >= 0.9
  # the lowest such threshold: one step lower (the next lower score) falls below 0.9
  lower = probs[:, 0][probs[:, 0] < points.thresholds[0]].max()
  assert (y[probs[:, 0] >= lower, 0]).mean() < 0.9
  assert (decided[:, 1] & y[:, 1]).sum() / y[:, 1].sum() >= 0.8
  assert points.thresholds[2] == pytest.approx(0.3)
  assert points.notes == {}

  # the most probable image is a negative: precision never exceeds 1/2
  unreachable = op.choose_thresholds(np.array([[0], [1], [0]]), np.array([[0.9], [0.8], [0.1]]),
                                     [op.parse_policy("precision:0.9")], ["cat"])
  assert unreachable.notes == {"cat": "precision 0.9 not reached: at most 0.500"}
  assert 0.1 < unreachable.thresholds[0] <= 0.8  # the best it can do: tag the top two


def test_expected_precision_recall_are_the_measured_ones_inside_their_interval():
  y, probs = scored_labels()
  thresholds = np.array([0.5, 0.6, 0.7])
  expected = op.expected_precision_recall(y, probs, thresholds, samples=200)
  report = metrics.classification_report(y, metrics.decide(probs, thresholds), NAMES)["per_label"]
  for k, name in enumerate(NAMES):
    for measure in ("precision", "recall"):
      value = expected[measure]["value"][k]
      assert value == pytest.approx(report[name][measure])
      assert expected[measure]["low"][k] <= value <= expected[measure]["high"][k]


def test_prior_shift_recovers_calibrated_probabilities_of_a_new_mix_and_em_finds_it():
  """Exact posteriors under train priors, shifted to a stream's priors, equal that stream's exact
  posteriors."""
  rng = np.random.default_rng(1)
  train_prior, stream_prior = np.array([0.6, 0.3]), np.array([0.2, 0.05])
  # one Gaussian score per label: N(1, 1) for positives, N(-1, 1) for negatives
  def posterior(x, prior):
    likelihood_ratio = np.exp(2 * x)
    return prior * likelihood_ratio / (prior * likelihood_ratio + 1 - prior)

  labels = rng.random((20000, 2)) < stream_prior
  x = rng.normal(np.where(labels, 1.0, -1.0), 1.0)
  shifted = op.prior_shift(posterior(x, train_prior), train_prior, stream_prior)
  np.testing.assert_allclose(shifted, posterior(x, stream_prior), rtol=1e-9)
  estimate, iterations = op.estimate_prevalence(posterior(x, train_prior), train_prior)
  np.testing.assert_allclose(estimate, labels.mean(axis=0), atol=0.01)
  assert iterations < 1000


def test_stream_thresholds_use_the_streams_own_tagged_share():
  """On a stream of half unlike-anything photos, precision is prevalence x recall / tagged share."""
  y, probs = scored_labels()
  rng = np.random.default_rng(2)
  # labelled-like half, then noise
  stream = np.concatenate([probs[:200], rng.random((200, 3)) * 0.8])
  prevalence = y[:200].mean(axis=0) / 2
  points = op.choose_thresholds(y, probs, op.parse_policies(["share", "dog=f1"], NAMES), NAMES,
                                stream, prevalence)
  tagged = (stream >= points.thresholds).mean(axis=0)
  assert (tagged[0] == pytest.approx(prevalence[0], abs=0.01)
          and tagged[2] == pytest.approx(prevalence[2], abs=0.01))
  expected = op.expected_precision_recall(y, probs, points.thresholds, stream, prevalence,
                                          samples=100)
  recall = (probs[y[:, 1] > 0, 1] >= points.thresholds[1]).mean()
  assert expected["recall"]["value"][1] == pytest.approx(recall)
  assert expected["precision"]["value"][1] == pytest.approx(min(1,
                                                                prevalence[1] * recall / tagged[1]))
  with pytest.raises(ValueError, match="share policy needs a target"):
    op.choose_thresholds(y, probs, op.parse_policies(["share"], NAMES), NAMES)


@pytest.mark.parametrize("content, message", [
    ("cat,0.2\nbird,0.1\n", "unknown label 'bird'"),
    ("cat,0\n", "outside"),
    ("cat,1.5\n", "outside"),
    ("cat,lots\n", "not a number"),
    ("cat,0.2\ncat,0.3\n", "twice"),
    ("cat,0.2,x\n", "expected 'label,prevalence'"),
])
def test_bad_prevalence_files_are_errors_naming_the_line(tmp_path, content, message):
  path = tmp_path / "prevalence.csv"
  path.write_text(content)
  with pytest.raises(ValueError, match=message) as error:
    op.read_prevalence(str(path), NAMES, np.array([0.5, 0.2, 0.1]))
  assert f"{path}:" in str(error.value)


def test_prevalence_file_header_no_label_row_and_missing_labels_kept_at_training_prior(tmp_path):
  path = tmp_path / "prevalence.csv"
  path.write_text("label,prevalence\n\ncat, 0.25\n(none),0.5\r\n")
  read = op.read_prevalence(str(path), NAMES, np.array([0.5, 0.2, 0.1]))
  np.testing.assert_allclose(read.values, [0.25, 0.2, 0.1])
  assert read.missing == ["dog", "sun"] and read.no_label == 0.5


def test_stream_thresholds_count_labels_tagged_through_a_rule():
  """With female=>people, people's own threshold only tops up what female already tags, to its
  prevalence."""
  rng = np.random.default_rng(3)
  names = ["female", "people"]
  y = np.array([[1, 1]] * 50 + [[0, 1]] * 50 + [[0, 0]] * 100)
  probs = np.clip(0.5 * y + 0.5 * rng.random(y.shape), 0, 1)
  stream = rng.random((1000, 2))
  prevalence = np.array([0.2, 0.3])
  points = op.choose_thresholds(y, probs, op.parse_policies(["share"], names), names, stream,
                                prevalence,
                                implications=[("female", "people")])
  served = op.predicted_shares(metrics.decide(stream, points.thresholds, names,
                                              [("female", "people")]), names)
  assert (served["female"] == pytest.approx(0.2, abs=0.01)
          and served["people"] == pytest.approx(0.3, abs=0.01))
  alone = op.choose_thresholds(y, probs, op.parse_policies(["share"], names), names, stream,
                               prevalence)
  # without the rule, people would be tagged on 0.3 + extra
  assert points.thresholds[1] > alone.thresholds[1]
