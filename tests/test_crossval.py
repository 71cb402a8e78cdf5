"""Cross-validation, label suspects and progressive growing on a tiny corpus (1 epoch, 2 folds)."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from helpers import fast_config, make_tiny_corpus, run_cli
from scipy.special import logit

from mlc_tf.data import corpus, corrections
from mlc_tf.evaluate import suspects
from mlc_tf.experiments import crossval, growing

NAMES = ["cat", "dog", "sun"]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("corpus"))
  make_tiny_corpus(root, num_images=32)
  return root


@pytest.fixture(scope="module")
def cv_run(corpus_dir, tmp_path_factory):
  """mlc-cv, 2 folds of 1 epoch: (workdir, its stdout)."""
  workdir = str(tmp_path_factory.mktemp("cv"))
  stdout = run_cli("cv", f"--data_dir={corpus_dir}", f"--workdir={workdir}", "--folds=2",
                   "--config.data.image_size=16", "--config.model.width=4",
                   "--config.model.depth=2", "--config.train.epochs=1",
                   "--config.train.batch_size=8")
  return workdir, stdout


def test_mlc_cv_folds_summary_and_out_of_fold_predictions(corpus_dir, cv_run):
  workdir, stdout = cv_run
  assert ("2-fold cross-validation, 32 images" in stdout and "micro F1 @cal" in stdout
          and "| sun |" in stdout)
  frame, _ = corpus.load_corpus(corpus_dir)
  assert sorted(os.listdir(workdir)) == ["cv_report.json", "cv_report.md", "fold_1", "fold_2",
                                         "oof_predictions.csv"]
  assert {"model.keras", "history.csv",
          "report.json"} <= set(os.listdir(os.path.join(workdir, "fold_1")))
  # Every image is predicted exactly once, by the fold that held it out, with its given labels.
  oof = crossval.read_oof(workdir)
  assert list(oof.index) == list(frame.index) and set(oof["fold"]) == {1, 2}
  np.testing.assert_array_equal(oof[NAMES].to_numpy(), frame[NAMES].to_numpy())
  assert ((oof[[f"prob_{n}" for n in NAMES]] >= 0) &
          (oof[[f"prob_{n}" for n in NAMES]] <= 1)).all().all()
  written = json.load(open(os.path.join(workdir, "cv_report.json")))
  for k, report in enumerate(written["folds"], start=1):
    assert report["num_images"] == (oof["fold"] == k).sum()
    in_fold = oof[oof["fold"] == k]
    for name in NAMES:  # each image carries its fold model's calibrated threshold
      np.testing.assert_allclose(in_fold[f"threshold_{name}"], report["thresholds"][name],
                                 rtol=1e-6)
    # Stratified: each fold holds half of each label's positives, give or take one.
    for name in NAMES:
      assert abs(report["at_0.5"]["per_label"][name]["support"] - frame[name].sum() / 2) <= 1
  micro = [r["at_calibrated"]["micro"]["f1"] for r in written["folds"]]
  assert written["summary"]["at_calibrated/micro/f1"]["mean"] == pytest.approx(np.mean(micro))
  assert written["summary"]["at_calibrated/micro/f1"]["std"] == pytest.approx(np.std(micro))


def test_summarize_keeps_metrics_every_fold_has():
  folds = [{"a": 1.0, "b": {"c": 2.0}}, {"a": 3.0, "b": {"c": 4.0}, "only_here": 1.0}]
  summary = crossval.summarize(folds)
  assert summary == {"a": {"mean": 2.0, "std": 1.0, "folds": [1.0, 3.0]},
                     "b/c": {"mean": 3.0, "std": 1.0, "folds": [2.0, 4.0]}}


def _oof():
  return pd.DataFrame({
      "fold": [1, 1, 2, 2], "path": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
      "cat": [1, 0, 1, 0], "dog": [0, 0, 1, 1],
      "prob_cat": [0.05, 0.97, 0.9, 0.4], "prob_dog": [0.2, 0.1, 0.45, 0.3],
      "threshold_cat": [0.5, 0.5, 0.2, 0.2], "threshold_dog": [0.02, 0.02, 0.02, 0.02]},
      index=pd.Index([11, 12, 13, 14], name="image_id"))


def test_rank_suspects_measures_the_margin_past_each_threshold():
  ranked = suspects.rank_suspects(_oof(), ["cat", "dog"], min_margin=1.0)
  assert list(zip(ranked["image_id"], ranked["label"], ranked["action"])) == [
      (12, "cat", "add"), (11, "cat", "remove"), (11, "dog", "add"), (12, "dog", "add")]
  np.testing.assert_allclose(ranked["margin"], [
      logit(0.97) - logit(0.5),
      logit(0.5) - logit(0.05),
      logit(0.2) - logit(0.02),
      logit(0.1) - logit(0.02)
  ], atol=1e-3)
  # Dog's positives score 0.45 and 0.3: below 0.5, yet above dog's threshold, so not suspects.
  assert not ((ranked["label"] == "dog") & (ranked["action"] == "remove")).any()
  # Image 14 lacks cat at 0.4 against a 0.2 threshold: a margin under 1 logit.
  assert len(suspects.rank_suspects(_oof(), ["cat", "dog"], min_margin=0.9)) == 5
  assert len(suspects.rank_suspects(_oof(), ["cat", "dog"], min_margin=2.7)) == 2
  with pytest.raises(ValueError, match="min_margin"):
    suspects.rank_suspects(_oof(), ["cat"], min_margin=0)


def test_suspects_csv_is_a_corrections_file(cv_run, corpus_dir, tmp_path):
  workdir, _ = cv_run
  ranked, written = suspects.write_suspects(crossval.read_oof(workdir), NAMES, str(tmp_path),
                                            min_margin=0.01, top=5)
  # After one epoch, far more than 5 of the 96 image-label decisions contradict the given labels.
  assert len(ranked) == 5 and [os.path.basename(p) for p in written
                              ] == ["suspects.csv", "suspects.png"]
  frame, _ = corpus.load_corpus(corpus_dir)
  fixed, report = corrections.apply_corrections(frame, corrections.read_corrections(written[0]),
                                                written[0])
  assert len(report.added) + len(report.removed) == len(ranked) and not report.already_so
  for row in ranked.itertuples():
    assert fixed.at[row.image_id, row.label] == (row.action == "add")


def test_mlc_suspects_reuses_the_out_of_fold_predictions(cv_run, corpus_dir, tmp_path):
  workdir, _ = cv_run
  out = str(tmp_path / "suspects")
  stdout = run_cli("suspects", f"--data_dir={corpus_dir}", f"--cv_workdir={workdir}",
                   f"--output_dir={out}", "--min_margin=0.01")
  assert "using the out-of-fold predictions" in stdout and "suspect label(s)" in stdout
  assert "suspects.csv" in os.listdir(out)


def test_mlc_grow_adds_layers_until_the_gain_falls_below_the_margin(corpus_dir, tmp_path):
  stdout = run_cli("grow", f"--data_dir={corpus_dir}", f"--workdir={tmp_path}", "--margin=1.0",
                   "--patience=2", "--max_depth=4", "--config.data.image_size=16",
                   "--config.model.width=4", "--config.train.epochs=1",
                   "--config.train.batch_size=8")
  # No depth can gain a full 1.0 of F1: depth 1 is kept, depths 2 and 3 (patience 2) are tried, then
  # growth stops.
  assert all(f"depth {d}: val micro-F1" in stdout for d in (1, 2, 3)) and "depth 4" not in stdout
  assert "Chosen depth: 1 (depths 2-3 did not beat depth 1's validation micro-F1" in stdout
  growth = json.load(open(tmp_path / "growth.json"))
  assert growth["best_depth"] == 1 and [step["depth"] for step in growth["steps"]] == [1, 2, 3]
  assert growth["steps"][1]["parameters"] > growth["steps"][0]["parameters"]
  assert all(step["train_seconds"] > 0 and step["epochs"] == 1 for step in growth["steps"])
  assert {"growth.md", "depth_1", "depth_2", "depth_3"} <= set(os.listdir(tmp_path))


def test_grow_builds_two_network_models_with_their_label_names(corpus_dir, tmp_path):
  cfg = fast_config(epochs=1)
  cfg.model.first_labels = ("cat",)  # two networks: needs the label names at every depth
  growth = growing.grow(cfg, corpus_dir, str(tmp_path), start_depth=1, max_depth=1)
  assert [step.depth for step in growth.steps] == [1] and growth.best_depth == 1
  assert growth.steps[0].parameters > 0


def test_grow_stops_where_the_builder_cannot_go_deeper(corpus_dir, tmp_path):
  # 16 px images pool to 1 px at depth 4: simple_cnn cannot be built at depth 5.
  with pytest.raises(ValueError,
                     match="cannot be built at depth 5 for 16px images: .*zero or negative"):
    growing.grow(fast_config(), corpus_dir, str(tmp_path), start_depth=5, max_depth=6)
