"""What to tag next: the ranking (mlc_tf/evaluate/suggestions.py) and mlc-suggest."""

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO_ROOT, run_cli

from mlc_tf.evaluate import suggestions


def test_uncertainty_peaks_on_the_threshold_and_rare_labels_weigh_more():
  probabilities = np.array([[0.3, 0.3], [0.65, 0.0], [1.0, 0.3]])
  u = suggestions.uncertainty(probabilities, np.array([0.3, 0.3]))
  np.testing.assert_allclose(u, [[1, 1], [0.5, 0], [0, 1]])  # 0.65: half way up from 0.3 to 1
  # A low threshold: a probability well under it is sure, not "0.96 unsure" (a margin of max(t, 1-t)
  # would say so of every photo).
  np.testing.assert_allclose(suggestions.uncertainty(np.array([[0.01, 0.5]]), [0.05, 0.05]),
                             [[0.2, 1 - 0.45 / 0.95]])
  weights = suggestions.rarity_weights(np.array([0.5, 0.01]), 2, cap=20)
  np.testing.assert_allclose(weights, [2, 20])  # 1 / 0.01 capped
  np.testing.assert_allclose(suggestions.rarity_weights(None, 2), [1, 1])
  np.testing.assert_allclose(suggestions.scores(probabilities, [0.3, 0.3], [0.5, 0.01]),
                             [22, 1, 20])


def test_diverse_picks_pass_over_near_duplicates():
  rng = np.random.default_rng(0)
  burst = np.tile(rng.normal(size=8), (3, 1)) + rng.normal(scale=1e-3, size=(3, 8))
  others = rng.normal(size=(3, 8))
  embeddings = np.concatenate([burst, others])
  photo_scores = np.array([3.0, 2.9, 2.8, 1.0, 0.9, 0.8])
  assert suggestions.pick_diverse(photo_scores, embeddings, 3, diversity=0) == [0, 1, 2]
  picked = suggestions.pick_diverse(photo_scores, embeddings, 3)
  assert picked[0] == 0 and not {1, 2} & set(picked)
  assert len(suggestions.pick_diverse(photo_scores, embeddings, 10)) == 6


def test_suggest_names_the_labels_it_is_unsure_of():
  picks = suggestions.suggest(["a.jpg", "b.jpg"], np.array([[0.5, 0.9, 0.45], [0.0, 0.99, 1.0]]),
                              np.eye(2), np.array([0.5, 0.5, 0.5]), np.array([0.5, 0.5, 0.05]),
                              ["cat", "dog", "sun"], count=1)
  assert picks == [suggestions.Suggestion("a.jpg", 1, 20.4, ("sun", "cat"), ("cat", "dog"))]
  with pytest.raises(ValueError, match="count must be at least 1"):
    suggestions.suggest(["a.jpg"], np.zeros((1, 3)), np.eye(1), np.full(3, 0.5), None,
                        ["cat", "dog", "sun"], count=0)


def _run(*args):
  return subprocess.run([sys.executable, "-m", "mlc_tf.cli.suggest", *args], capture_output=True,
                        text=True, cwd=REPO_ROOT, timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_mlc_suggest_writes_the_ranked_csv_and_names_what_it_skipped(tiny_trained, tmp_path):
  root, workdir, _ = tiny_trained
  photos = tmp_path / "untagged"
  photos.mkdir()
  for k in range(1, 13):
    shutil.copy(os.path.join(root, "images", f"im{k}.jpg"), photos / f"photo{k}.jpg")
  (photos / "broken.jpg").write_bytes(b"not a jpeg")
  output = tmp_path / "suggestions.csv"
  stdout = run_cli("suggest", f"--model={workdir}", f"--images={photos}", "--count=4",
                   f"--output={output}")
  assert "wrote" in stdout and "4 of 12 photo(s)" in stdout
  assert "skipped 1 file(s)" in stdout and "broken.jpg" in stdout
  with open(output) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == list(suggestions.CSV_COLUMNS)
  assert [row["rank"] for row in rows] == ["1", "2", "3", "4"]
  assert all(os.path.dirname(row["file"]) == str(photos) for row in rows)
  assert len({row["file"] for row in rows}) == 4


def test_mlc_suggest_refuses_a_folder_without_a_readable_image_and_a_count_below_one(
    tiny_trained, tmp_path):
  _, workdir, _ = tiny_trained
  (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
  output = tmp_path / "suggestions.csv"
  none = _run(f"--model={workdir}", f"--images={tmp_path}", f"--output={output}")
  assert none.returncode == 1 and "none of the 1 file(s)" in none.stderr
  assert not output.exists()
  zero = _run(f"--model={workdir}", f"--images={tmp_path}", "--count=0")
  assert zero.returncode != 0 and "--count" in zero.stderr
