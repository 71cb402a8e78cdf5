"""Label health (cleanlab's confident learning on out-of-fold probabilities): the flagged pairs,
the per-label table and mlc-explore --oof, on synthetic predictions."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from cleanlab.multilabel_classification import dataset as cleanlab_dataset
from helpers import make_tiny_corpus, run_cli

from mlc_tf.data import corpus
from mlc_tf.evaluate import exploration, label_health
from mlc_tf.experiments import crossval

NAMES = ["cat", "dog", "sun"]


def _noisy_oof(num_images=600, flip_share=0.15, seed=0, image_ids=None):
  """Out-of-fold predictions that know the true labels; ``dog``'s given labels flipped on
  ``flip_share`` of the images, the others clean. Returns (oof, the flipped image ids)."""
  rng = np.random.default_rng(seed)
  truth = (rng.random((num_images, len(NAMES))) < 0.35).astype(int)
  probabilities = np.clip(truth * 0.7 + rng.normal(0.15, 0.08, truth.shape), 0.001, 0.999)
  given = truth.copy()
  flipped = rng.random(num_images) < flip_share
  given[flipped, 1] = 1 - given[flipped, 1]
  index = pd.Index(image_ids if image_ids is not None else np.arange(1, num_images + 1),
                   name="image_id")
  oof = pd.DataFrame(given, columns=NAMES, index=index)
  oof.insert(0, "fold", rng.integers(1, 3, num_images))
  for k, name in enumerate(NAMES):
    oof[f"prob_{name}"] = probabilities[:, k]
  for name in NAMES:
    oof[f"threshold_{name}"] = 0.5
  return oof, index[flipped]


def test_a_label_with_injected_flips_looks_noisier_than_the_clean_ones():
  oof, flipped = _noisy_oof()
  health = label_health.label_health(oof, NAMES).set_index("label")
  assert health.index[0] == "dog"  # noisiest first
  assert health.at["dog", "issue_share"] > 5 * max(health.at["cat", "issue_share"],
                                                   health.at["sun", "issue_share"], 0.01)
  # the flips were both ways: given dog where none is (FP) and none given where one is (FN)
  assert health.at["dog", "suspected_false_positives"] > 10
  assert health.at["dog", "suspected_false_negatives"] > 10
  assert health.at["dog", "quality"] < health.at["cat", "quality"]
  assert health.at["dog", "given"] == oof["dog"].sum()
  # the counts are cleanlab's own per-class summary
  labels = [list(np.flatnonzero(row)) for row in oof[NAMES].to_numpy()]
  common = cleanlab_dataset.common_multilabel_issues(
      labels, oof[[f"prob_{n}" for n in NAMES]].to_numpy(), class_names=NAMES)
  for _, row in common.iterrows():
    column = ("suspected_false_positives" if row["In Given Label"] else
              "suspected_false_negatives")
    assert health.at[row["Class Name"], column] == row["Num Examples"], row
  table = "\n".join(label_health.health_markdown(health.reset_index(), len(oof)))
  assert "| dog |" in table and "600 images" in table


def test_the_flagged_pairs_are_the_flips():
  oof, flipped = _noisy_oof()
  flagged, quality = label_health.find_issues(oof, NAMES)
  dog = oof.index[flagged[:, 1]]
  assert len(dog) and set(dog) <= set(flipped)  # precise: only flipped images
  assert len(dog) > 0.6 * len(flipped)  # and most of them
  assert not flagged[:, [0, 2]].any()
  # self-confidence: the probability of the given value
  given = oof[NAMES].to_numpy()
  probabilities = oof[[f"prob_{n}" for n in NAMES]].to_numpy()
  np.testing.assert_allclose(quality, np.where(given == 1, probabilities, 1 - probabilities),
                             atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda oof: oof.drop(columns="prob_sun"), r"lack column\(s\) \['prob_sun'\]"),
    (lambda oof: oof.assign(prob_cat=np.where(oof.index == 3, np.nan, oof["prob_cat"])),
     r"1 image\(s\) have a probability missing or outside \[0, 1\], e.g. \[3\]"),
    (lambda oof: oof.assign(dog=np.where(oof.index == 7, 2, oof["dog"])), r"image\(s\) \[7\]"),
    (lambda oof: oof.iloc[:0], "hold no image"),
])
def test_bad_out_of_fold_predictions_are_named(change, message):
  with pytest.raises(ValueError, match=message):
    label_health.label_health(change(_noisy_oof(num_images=50)[0]), NAMES)


def test_mlc_explore_oof_writes_the_health_table(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=60)
  frame, _ = corpus.load_corpus(root)
  oof, _ = _noisy_oof(num_images=60, image_ids=frame.index)
  cv_workdir = tmp_path / "cv"
  cv_workdir.mkdir()
  oof.to_csv(cv_workdir / "oof_predictions.csv")
  out = str(tmp_path / "explore")
  stdout = run_cli("explore", f"--data_dir={root}", f"--output_dir={out}", f"--oof={cv_workdir}")
  assert "Label health" in stdout and "| dog |" in stdout
  assert "Label health" in open(os.path.join(out, "explore.md")).read()
  health = json.load(open(os.path.join(out, "explore.json")))["label_health"]
  assert health["images"] == 60 and {row["label"] for row in health["labels"]} == set(NAMES)


def test_explore_refuses_out_of_fold_predictions_it_cannot_use(tmp_path):
  """What mlc-explore --oof calls: crossval.read_oof, then exploration.explore."""
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=20)
  frame, _ = corpus.load_corpus(root)
  other, _ = _noisy_oof(num_images=10, image_ids=np.arange(1001, 1011))
  other.to_csv(tmp_path / "other.csv")
  with pytest.raises(ValueError, match=r"not of this corpus: 10 image id\(s\) it does not have"):
    exploration.explore(frame, oof=crossval.read_oof(str(tmp_path / "other.csv")))
  with pytest.raises(ValueError, match=r"not of this corpus: label\(s\) \['dog'\]"):
    exploration.explore(frame[["path", "cat", "sun"]],
                        oof=other.set_axis(frame.index[:10]))
  with pytest.raises(ValueError, match="no prob_<label> column"):
    exploration.explore(frame, oof=frame[["cat"]])
  with pytest.raises(FileNotFoundError, match="oof_predictions.csv not found: run cross-valid"):
    crossval.read_oof(str(tmp_path / "nowhere"))
  (tmp_path / "plain.csv").write_text("a,b\n1,2\n")
  with pytest.raises(ValueError, match="has no image_id column"):
    crossval.read_oof(str(tmp_path / "plain.csv"))
