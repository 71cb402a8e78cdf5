import numpy as np
import pytest
from sklearn import metrics as skm

from mlc_tf import evaluation


def test_f1_optimal_thresholds_known_answer():
  # Label 0: positives score 0.3 and 0.4, negatives 0.1, 0.2, 0.9 -> best F1 (0.8) from 0.3 on,
  # so t lies midway between 0.2 and 0.3.  Label 1: separated between 0.5 and 0.6.
  # Label 2: no positive -> default 0.5.
  y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]])
  p = np.array([[0.3, 0.1, 0.2], [0.4, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.7, 0.9], [0.9, 0.5, 0.1]])
  t = evaluation.f1_optimal_thresholds(y, p)
  np.testing.assert_allclose(t, [0.25, 0.55, 0.5], rtol=1e-6)
  d = evaluation.decide(p, t)
  assert skm.f1_score(y[:, 0], d[:, 0]) == pytest.approx(0.8) and skm.f1_score(y[:, 1], d[:, 1]) == 1.0


def test_report_matches_sklearn():
  rng = np.random.default_rng(0)
  y = (rng.random((200, 4)) < 0.3).astype(int)
  p = np.clip(y * 0.4 + rng.random((200, 4)) * 0.6, 0, 1)
  thresholds = evaluation.f1_optimal_thresholds(y, p)
  result = evaluation.evaluate(y, p, thresholds, ["a", "b", "c", "d"])
  d = evaluation.decide(p, thresholds)
  assert result["at_calibrated"]["micro"]["f1"] == skm.f1_score(y, d, average="micro")
  assert result["at_calibrated"]["macro"]["f1"] == skm.f1_score(y, d, average="macro")
  assert result["at_0.5"]["per_label"]["b"]["recall"] == skm.recall_score(y[:, 1], (p[:, 1] >= 0.5))
  assert result["at_calibrated"]["micro"]["f1"] >= result["at_0.5"]["micro"]["f1"]
  table = evaluation.format_report(result)
  assert table.count("\n| ") == 4 + 2 + 1 and "**micro**" in table
