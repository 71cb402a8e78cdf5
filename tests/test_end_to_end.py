"""Train a few steps, export, and serve the SavedModel in a process that never imports mlc_tf."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import fast_config

from mlc_tf.evaluate import scoring
from mlc_tf.serving import export
from mlc_tf.train import training

SERVE_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    images = [open(p, "rb").read() for p in sys.argv[2:]]
    out = model.signatures["serving_default"](image_bytes=tf.constant(images))
    meta = model.signatures["metadata"]()
    print(json.dumps({
        "probabilities": out["probabilities"].numpy().tolist(),
        "decisions": out["decisions"].numpy().tolist(),
        "label_names": [s.decode() for s in meta["label_names"].numpy()],
        "thresholds": meta["thresholds"].numpy().tolist(),
        "image_size": int(meta["image_size"].numpy()),
        "imported_mlc_tf": "mlc_tf" in sys.modules,
    }))
""")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from helpers import make_tiny_corpus
  root = str(tmp_path_factory.mktemp("corpus"))
  make_tiny_corpus(root, num_images=40)
  workdir = str(tmp_path_factory.mktemp("workdir"))
  result = training.train(fast_config(), root, workdir)
  return root, workdir, result


def test_training_writes_reports_and_model(trained):
  _, workdir, result = trained
  for name in ("history.csv", "model.keras", "report.json", "config.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  report = json.load(open(os.path.join(workdir, "report.json")))
  assert set(report) == {
      "num_images", "thresholds", "average_precision", "at_0.5", "at_calibrated", "training",
      "split"
  }
  assert report["split"] == "test"
  assert report["training"]["epochs"] == 2 and report["training"]["fit_seconds"] > 0
  best = int(np.argmax(result.history["val_micro_f1"])) + 1  # the monitored metric's best epoch
  assert report["training"]["best_epoch"] == best
  assert 8 <= report["num_images"] <= 12 and set(report["thresholds"]) == {"cat", "dog", "sun"}
  assert len(result.history["val_micro_f1"]) == 2  # the calibration callback logged every epoch
  import keras
  reloaded = keras.saving.load_model(os.path.join(workdir, "model.keras"), safe_mode=True)
  np.testing.assert_allclose(reloaded.get_layer("decisions").thresholds.numpy(), result.thresholds)


def test_export_serves_jpeg_bytes_without_mlc_tf(trained, tmp_path):
  root, _, result = trained
  base = str(tmp_path / "saved_models")
  first = export.export_saved_model(result.inference_model, label_names=result.label_names,
                                    image_size=16, base_dir=base, name="tiny")
  second = export.export_saved_model(result.inference_model, label_names=result.label_names,
                                     image_size=16, base_dir=base, name="tiny")
  assert first.endswith(os.path.join("tiny", "1")) and second.endswith(os.path.join("tiny", "2"))
  assert sorted(os.listdir(os.path.join(base, "tiny"))) == ["1", "2"]  # no staging leftovers

  images = [os.path.join(root, "images", f"im{i}.jpg") for i in (1, 5, 7)]  # im5 is grayscale
  proc = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, first, *images], capture_output=True,
                        text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  served = json.loads(proc.stdout.strip().splitlines()[-1])
  assert not served["imported_mlc_tf"]
  assert served["label_names"] == ["cat", "dog", "sun"] and served["image_size"] == 16
  np.testing.assert_allclose(served["thresholds"], result.thresholds, rtol=1e-6)

  import pandas as pd
  frame = pd.DataFrame({"path": images, "cat": 0, "dog": 0, "sun": 0})
  expected = scoring.predict(result.model, frame, result.label_names, fast_config())
  np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
  np.testing.assert_array_equal(served["decisions"], (expected >= result.thresholds).astype(int))
