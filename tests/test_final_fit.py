"""A final fit (config.data.test_fraction=0): every labelled image trains, bar the validation
part."""

import json
import os

import pytest
from helpers import fast_config, make_tiny_corpus, run_cli

from mlc_tf.data import split_corpus
from mlc_tf.train import training


def test_a_final_fit_trains_on_the_test_images_too_and_reports_the_validation_split(
    tmp_path, caplog):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=32)
  cfg = fast_config(epochs=1)
  cfg.data.test_fraction = 0.0
  data = split_corpus.load_and_split(root, cfg)
  assert data.test.empty and len(data.train) + len(data.val) == 32
  workdir = str(tmp_path / "final")
  result = training.train(cfg, root, workdir)
  assert result.report["split"] == "validation" and result.report["num_images"] == len(data.val)
  assert "optimistic" in caplog.text
  with open(os.path.join(workdir, "report.json")) as f:
    assert json.load(f)["split"] == "validation"
  # run_cli asserts on the exit status
  with pytest.raises(AssertionError, match="the test split is empty"):
    run_cli("evaluate", f"--model={workdir}", f"--data_dir={root}")
