import numpy as np
import pytest
from sklearn import metrics as skm

from mlc_tf.evaluate import metrics


def test_f1_optimal_thresholds_known_answer():
  # Label 0: positives score 0.3 and 0.4, negatives 0.1, 0.2, 0.9 -> best F1 (0.8) from 0.3 on,
  # so t lies midway between 0.2 and 0.3.  Label 1: separated between 0.5 and 0.6.
  # Label 2: no positive -> default 0.5.
  y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]])
  p = np.array([[0.3, 0.1, 0.2], [0.4, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.7, 0.9], [0.9, 0.5,
                                                                                     0.1]])
  t = metrics.f1_optimal_thresholds(y, p)
  np.testing.assert_allclose(t, [0.25, 0.55, 0.5], rtol=1e-6)
  d = metrics.decide(p, t)
  assert skm.f1_score(y[:, 0], d[:, 0]) == pytest.approx(0.8) and skm.f1_score(y[:, 1], d[:,
                                                                                          1]) == 1.0


def test_report_matches_sklearn():
  rng = np.random.default_rng(0)
  y = (rng.random((200, 4)) < 0.3).astype(int)
  p = np.clip(y * 0.4 + rng.random((200, 4)) * 0.6, 0, 1)
  thresholds = metrics.f1_optimal_thresholds(y, p)
  result = metrics.evaluate(y, p, thresholds, ["a", "b", "c", "d"])
  d = metrics.decide(p, thresholds)
  assert result["at_calibrated"]["micro"]["f1"] == skm.f1_score(y, d, average="micro")
  assert result["at_calibrated"]["macro"]["f1"] == skm.f1_score(y, d, average="macro")
  assert result["at_0.5"]["per_label"]["b"]["recall"] == skm.recall_score(y[:, 1], (p[:, 1] >= 0.5))
  assert result["at_calibrated"]["micro"]["f1"] >= result["at_0.5"]["micro"]["f1"]
  table = metrics.format_report(result)
  assert table.count("\n| ") == (1 + 4 +
                                 3) + (1 + 2) and "**micro**" in table and "Hamming loss" in table


def _fixed_arrays():
  """Labels and scores with an unlabelled image, a label with no positive and a label never
  predicted."""
  y = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]])
  p = np.array([[0.9, 0.2, 0.1, 0.4], [0.3, 0.7, 0.2, 0.45], [0.6, 0.4, 0.3, 0.1],
                [0.2, 0.1, 0.6, 0.2], [0.4, 0.3, 0.1, 0.3], [0.1, 0.2, 0.1, 0.1]])
  return y, p


def test_set_level_scores_match_sklearn():
  y, p = _fixed_arrays()
  d = metrics.decide(p, 0.5)
  report = metrics.classification_report(y, d, ["a", "b", "c", "d"])
  assert report["samples"]["f1"] == pytest.approx(
      skm.f1_score(y, d, average="samples", zero_division=1.0))
  assert report["exact_match"] == pytest.approx(skm.accuracy_score(y, d))
  assert report["hamming_loss"] == pytest.approx(skm.hamming_loss(y, d))
  # By hand: rows 4 and 6 have no label; row 6 predicts none (F1 1), row 4 predicts c (F1 0); row 5
  # predicts nothing (F1 0). Per-row F1: 2/3, 2/3, 2/3, 0, 0, 1 -> 3 / 6. Exact: row 6 only.
  # Hamming: one wrong decision in rows 1-4, two in row 5 -> 6 of 24.
  assert report["samples"]["f1"] == pytest.approx(3 / 6)
  assert report["exact_match"] == pytest.approx(1 / 6)
  assert report["hamming_loss"] == pytest.approx(6 / 24)


def test_average_precision_matches_sklearn_and_skips_labels_without_positives():
  y, p = _fixed_arrays()
  ap = metrics.average_precision(y, p, ["a", "b", "c", "d"])
  assert ap["per_label"]["c"] is None  # no positive: undefined, not 0
  for k, name in enumerate("abd"):
    column = "abcd".index(name)
    assert ap["per_label"][name] == pytest.approx(
        skm.average_precision_score(y[:, column], p[:, column]))
  defined = np.delete(np.arange(4), 2)
  assert ap["map"] == pytest.approx(
      skm.average_precision_score(y[:, defined], p[:, defined], average="macro"))


def test_scalar_metrics_flattens_every_number():
  y, p = _fixed_arrays()
  result = metrics.evaluate(y, p, metrics.f1_optimal_thresholds(y, p), ["a", "b", "c", "d"])
  flat = metrics.scalar_metrics(result)
  assert flat["at_calibrated/micro/f1"] == result["at_calibrated"]["micro"]["f1"]
  assert flat["at_0.5/per_label/b/support"] == 2.0
  assert flat["average_precision/map"] == result["average_precision"]["map"]
  assert "average_precision/per_label/c" not in flat  # undefined AP is left out, not averaged as 0
  assert all(isinstance(v, float) for v in flat.values())


def test_bootstrap_interval_brackets_the_score_and_narrows_with_more_images():
  rng = np.random.default_rng(0)
  def draw(n):
    y_true = (rng.random((n, 4)) < 0.3).astype(int)
    y_pred = np.where(rng.random((n, 4)) < 0.8, y_true, 1 - y_true)  # 80 % of decisions right
    return y_true, y_pred
  small, large = draw(100), draw(2000)
  narrow = metrics.bootstrap_f1_interval(*large, samples=200)
  wide = metrics.bootstrap_f1_interval(*small, samples=200)
  micro, macro = metrics.micro_macro_f1(*large)
  assert narrow["micro_f1"][0] < micro < narrow["micro_f1"][1]
  assert narrow["macro_f1"][0] < macro < narrow["macro_f1"][1]
  assert np.diff(wide["micro_f1"]) > 2 * np.diff(narrow["micro_f1"])  # ~ 1/sqrt(n): 4.5x expected
  assert metrics.bootstrap_f1_interval(*small, samples=50, seed=3) == metrics.bootstrap_f1_interval(
      *small, samples=50, seed=3)


def test_one_label_is_scored_as_any_label_of_a_multi_label_report():
  rng = np.random.default_rng(1)
  y = (rng.random((60, 2)) < 0.3).astype(int)
  d = np.where(rng.random((60, 2)) < 0.2, 1 - y, y)
  one = metrics.classification_report(y[:, :1], d[:, :1], ["cat"])
  both = metrics.classification_report(y, d, ["cat", "dog"])
  assert one["per_label"] == {"cat": both["per_label"]["cat"]}  # not classes 0 and 1
  for average in ("micro", "macro"):  # the one label's own scores, not accuracy
    assert one[average] == {k: both["per_label"]["cat"][k] for k in ("precision", "recall", "f1")}
  assert one["samples"]["f1"] == one["exact_match"] == pytest.approx(np.mean(y[:, 0] == d[:, 0]))
  assert metrics.micro_macro_f1(y[:, :1], d[:, :1]) == (one["micro"]["f1"],) * 2
  low, high = metrics.bootstrap_f1_interval(y[:, :1], d[:, :1], samples=20)["micro_f1"]
  assert low <= one["micro"]["f1"] <= high
