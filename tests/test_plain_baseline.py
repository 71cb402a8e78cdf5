"""tools/export_split.py (mlc-train's split as a CSV) and tools/plain_baseline.py (a plain Keras
script), end to end."""

import json
import os
import subprocess
import sys

import pandas as pd
from helpers import REPO_ROOT, make_tiny_corpus

from mlc_tf import config as config_lib
from mlc_tf.data import split_corpus

_LABELS = ("cat", "dog", "sun")
_CONFIG = """
from mlc_tf import config as base

def get_config():
  config = base.base_config()
  config.data.val_fraction = 0.25
  config.data.test_fraction = 0.25
  config.data.split_seed = 3
  return config
"""


def _tool(name, *args):
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", name), *args],
                        capture_output=True,
                        text=True, cwd=REPO_ROOT, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_plain_baseline_trains_and_tests_on_the_split_mlc_train_makes(tmp_path):
  corpus = str(tmp_path / "corpus")
  make_tiny_corpus(corpus, labels=_LABELS, num_images=48)
  config_path = tmp_path / "tiny_config.py"
  config_path.write_text(_CONFIG)
  split_csv = str(tmp_path / "split.csv")
  _tool("export_split.py", f"--config={config_path}", f"--data_dir={corpus}",
        f"--output={split_csv}",
        "--config.data.split_seed=5")

  # The CSV is mlc_tf's own split of that config, override included.
  cfg = config_lib.base_config()
  cfg.data.val_fraction, cfg.data.test_fraction, cfg.data.split_seed = 0.25, 0.25, 5
  data = split_corpus.load_and_split(corpus, cfg)
  split = pd.read_csv(split_csv).set_index("image_id")["split"]
  assert len(split) == 48
  for name, part in (("train", data.train), ("val", data.val), ("test", data.test)):
    assert sorted(split[split == name].index) == sorted(part.index)

  output = str(tmp_path / "plain" / "report.json")
  stdout = _tool("plain_baseline.py", f"--data_dir={corpus}", f"--split_csv={split_csv}",
                 f"--output={output}",
                 "--image_size=16", "--width=4", "--epochs=1", "--batch_size=8",
                 "--budget_minutes=5")
  assert "micro P" in stdout and "CPU" in stdout
  with open(output) as f:
    report = json.load(f)
  assert report["data"]["labels"] == sorted(_LABELS)
  assert ((report["data"]["val_images"], report["data"]["test_images"])
          == (len(data.val), len(data.test)))
  assert report["training"]["train_images"] == len(data.train)
  assert report["training"]["epochs"] == 1 and report["training"]["best_epoch"] == 1
  calibrated = report["at_calibrated"]
  figures = [*calibrated["micro"].values(), calibrated["macro"]["f1"],
             *report["at_0.5"]["micro"].values(),
             report["average_precision"]["map"], *calibrated["per_label_f1"].values(),
             *report["thresholds"].values()]
  assert all(0 <= value <= 1 for value in figures)
  assert set(calibrated["per_label_f1"]) == set(_LABELS) == set(report["thresholds"])
  assert report["wall_seconds"]["total"] >= report["wall_seconds"]["fit"] > 0
  assert report["machine"]["cpu"]


def test_plain_baseline_splits_by_itself_without_a_split_csv(tmp_path):
  corpus = str(tmp_path / "corpus")
  make_tiny_corpus(corpus, labels=_LABELS, num_images=40)
  output = str(tmp_path / "report.json")
  _tool("plain_baseline.py", f"--data_dir={corpus}", f"--output={output}", "--image_size=16",
        "--width=4",
        "--epochs=1", "--batch_size=8", "--val_fraction=0.25", "--test_fraction=0.25")
  with open(output) as f:
    report = json.load(f)
  data, training = report["data"], report["training"]
  assert training["train_images"] + data["val_images"] + data["test_images"] == 40
  assert 8 <= data["test_images"] <= 12 and 8 <= data["val_images"] <= 12
