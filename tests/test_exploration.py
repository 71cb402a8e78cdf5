import json
import os

import numpy as np
import pytest
from helpers import make_tiny_corpus, run_cli
from PIL import Image

from mlc_tf.data import corpus
from mlc_tf.evaluate import exploration


def test_explore_counts_match_the_truth_written(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root, num_images=30, grayscale_every=5)
  # another size, no label
  Image.new("RGB", (20, 12)).save(os.path.join(root, "images", "im31.png"))
  frame, _ = corpus.load_corpus(root)
  result = exploration.explore(frame, [("cat", "dog")])
  truth[31] = set()
  assert result.num_images == 31
  assert dict(result.label_counts) == {label: sum(label in s for s in truth.values())
                                       for label in ("cat", "dog", "sun")}
  assert result.no_label_images == sum(not s for s in truth.values())
  assert result.labels_per_image.sum() == 31
  assert result.cooccurrence.at["cat", "sun"] == sum({"cat", "sun"} <= s for s in truth.values())
  assert result.grayscale_images == 6  # ids 5, 10, ..., 30
  assert dict(result.image_sizes) == {"16x16": 30, "20x12": 1}
  assert result.rule_violations["cat=>dog"] == sorted(
      i for i, s in truth.items() if "cat" in s and "dog" not in s)
  table = result.to_markdown()
  assert "| cat=>dog |" in table and "grayscale (single-channel): 6" in table
  assert json.loads(json.dumps(result.to_dict()))["no_label_images"] == result.no_label_images


def test_rules_are_checked_against_the_corpus_labels(tiny_corpus):
  frame, _ = corpus.load_corpus(tiny_corpus[0])
  with pytest.raises(ValueError, match=r"label\(s\) \['baby'\]"):
    exploration.explore(frame, [("baby", "cat")])


def test_mlc_explore_writes_tables_and_figures(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=12)
  out = str(tmp_path / "explore")
  stdout = run_cli("explore", f"--data_dir={root}", f"--output_dir={out}",
                   "--rules=cat=>dog,sun>dog")
  assert "| cat=>dog |" in stdout and "| sun=>dog |" in stdout  # the old 'a>b' form still reads
  assert sorted(
      os.listdir(out)) == ["cooccurrence.png", "explore.json", "explore.md", "label_counts.png"]
  with Image.open(os.path.join(out, "cooccurrence.png")) as image:
    assert image.format == "PNG" and np.asarray(image.convert("L")).std() > 5
