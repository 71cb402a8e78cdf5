"""Every figure is a real rendering: a PNG that PIL reads, of a plausible size, not blank."""

import numpy as np
import pandas as pd
import pytest
from helpers import make_tiny_corpus
from PIL import Image

from mlc_tf.evaluate import plots


def assert_png(path, min_width=300):
  with Image.open(path) as image:
    assert image.format == "PNG" and image.width >= min_width and image.height >= 150
    pixels = np.asarray(image.convert("L"), dtype=float)
  assert pixels.std() > 5  # something was drawn on the white canvas


@pytest.fixture
def arrays():
  rng = np.random.default_rng(0)
  y = (rng.random((60, 5)) < [0.5, 0.3, 0.2, 0.1, 0.0]).astype(int)
  p = np.clip(0.5 * y + 0.6 * rng.random(y.shape), 0, 1)
  return y, p, ["people", "female", "dog", "baby", "never"]


def test_training_curves_pairs_train_and_validation(tmp_path):
  history = pd.DataFrame({"epoch": range(4), "loss": [0.6, 0.4, 0.3, 0.2],
                          "val_loss": [0.6, 0.5, 0.5, 0.6],
                          "f1_at_0.5": [0.3, 0.5, 0.6, 0.7], "val_f1_at_0.5": [0.3, 0.4, 0.45, 0.4],
                          "val_micro_f1": [0.4, 0.5, 0.55, 0.5],
                          "val_macro_f1": [0.2, 0.3, 0.35, 0.3]})
  # three panels
  assert_png(plots.training_curves(history, str(tmp_path / "curves.png")), min_width=900)


def test_evaluation_figures(tmp_path, arrays):
  y, p, names = arrays
  assert_png(plots.pr_curves(y, p, names, str(tmp_path / "pr.png"), thresholds=np.full(5, 0.4)))
  assert_png(plots.predicted_vs_true_counts(y, (p >= 0.5).astype(int), names,
                                            str(tmp_path / "counts.png")))


def test_corpus_figures(tmp_path, arrays):
  y, _, names = arrays
  counts = pd.Series(y.sum(axis=0), index=names)
  assert_png(plots.label_count_bars(counts, str(tmp_path / "bars.png")))
  assert_png(plots.cooccurrence_heatmap(pd.DataFrame(y.T @ y, index=names, columns=names),
                                        str(tmp_path / "cooc.png")))


def test_image_grid_captions_and_unreadable_files(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=5)
  paths = [f"{root}/images/im{i}.jpg" for i in range(1, 6)]
  broken = tmp_path / "broken.jpg"
  broken.write_text("not an image")
  caption = plots.decision_caption(np.array([1, 0, 1]), np.array([1, 1, 0]), ["a", "b", "c"],
                                   np.array([0.9, 0.7, 0.2]))
  assert caption == [("✓ a 0.90", plots.CORRECT), ("+ b 0.70", plots.FALSE_POSITIVE),
                     ("− c 0.20", plots.MISSED)]
  assert plots.decision_caption(np.zeros(3), np.zeros(3),
                                ["a", "b", "c"])[0][0] == "(no label, none predicted)"
  assert_png(plots.image_grid(paths + [str(broken)], [caption] * 6, str(tmp_path / "grid.png"),
                              "six", columns=3))
  with pytest.raises(ValueError, match="no images"):
    plots.image_grid([], [], str(tmp_path / "empty.png"), "none")
