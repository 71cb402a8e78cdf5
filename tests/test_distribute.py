"""Strategies, global batch and LR scaling, precision; a real 2-worker MultiWorkerMirroredStrategy
job on CPU."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import REPO_ROOT, fast_config, make_tiny_corpus

from mlc_tf import config as config_lib
from mlc_tf.data import pipeline, split_corpus
from mlc_tf.train import distribute, training


def test_default_strategy_is_one_chief_replica():
  strategy = distribute.make_strategy("default")
  assert distribute.is_chief(strategy) and distribute.num_workers(strategy) == 1
  assert distribute.global_batch_size(32, strategy) == 32
  assert "1 replica(s)" in distribute.describe(strategy)
  assert distribute.for_strategy(
      model := keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), strategy) is model


def test_unknown_names_are_rejected():
  with pytest.raises(ValueError, match="known: default, mirrored, multi_worker"):
    distribute.make_strategy("parameter_server")
  with pytest.raises(ValueError, match="unknown precision"):
    with distribute.precision("float8"):
      pass
  with pytest.raises(ValueError, match="unknown learning-rate scaling"):
    distribute.scaled_learning_rate(1e-3, 64, 32, "cubic")


def test_learning_rate_scales_with_global_batch():
  assert distribute.scaled_learning_rate(1e-3, 256, 32, "linear") == pytest.approx(8e-3)
  assert distribute.scaled_learning_rate(1e-3, 128, 32, "sqrt") == pytest.approx(2e-3)
  assert distribute.scaled_learning_rate(1e-3, 128, 32, "none") == pytest.approx(1e-3)


def test_steps_per_epoch_covers_every_image_once():
  assert distribute.steps_per_epoch(100, 32) == 4
  assert distribute.steps_per_epoch(96, 32) == 3
  assert distribute.steps_per_epoch(5, 32) == 1


def test_precision_is_restored_after_the_block():
  before = keras.config.dtype_policy().name
  with distribute.precision("mixed_bfloat16"):
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
  assert keras.config.dtype_policy().name == before


def test_mirrored_mixed_precision_run(tmp_path):
  """The options for accelerators run end to end here (one CPU replica): bf16 compute, float32
  outputs."""
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=32)
  cfg = fast_config(epochs=1)
  cfg.strategy = "mirrored"
  cfg.train.precision = "mixed_bfloat16"
  cfg.optimizer.lr_scaling = "linear"
  result = training.train(cfg, root, str(tmp_path / "work"))
  assert keras.config.dtype_policy().name == "float32"  # the run did not leak its policy
  assert result.model.get_layer("conv1").compute_dtype == "bfloat16"
  assert result.model.get_layer("conv1").variable_dtype == "float32"
  assert result.model.get_layer("probabilities").compute_dtype == "float32"
  assert result.model.output.dtype == "float32"
  assert result.report["num_images"] > 0 and len(result.history["val_micro_f1"]) == 1


# A real 2-worker job: full-batch training (each worker's shard is exactly one per-replica batch),
# no augmentation or dropout, so each step sees the same 24 images as one worker with a global batch
# of 24. What differs is BatchNormalization's batch statistics (per replica, 12 images) and float
# summation order.
NUM_IMAGES = 48  # splits 24 train / 12 validation / 12 test
OVERRIDES = {
    "data.image_size": 16, "data.val_fraction": 0.25, "data.test_fraction": 0.25, "model.width": 4,
    "model.depth": 2, "model.dropout": 0.0, "augment.flip": "", "train.epochs": 3,
    "train.early_stopping_patience": 10, "export.name": "tiny"
}
PROBABILITY_TOLERANCE = 0.02  # max |p_2workers - p_1worker| over the test split's images and labels
F1_TOLERANCE = 0.05  # per epoch, calibrated micro F1 on the validation split (12 images x 3 labels)


def free_ports(count: int) -> list[int]:
  with contextlib.ExitStack() as stack:
    sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]


def cli_command(data_dir: str, workdir: str, export_dir: str, **extra) -> list[str]:
  flags = {**OVERRIDES, "export.base_dir": export_dir, **extra}
  return [
      sys.executable, "-m", "mlc_tf.cli.train",
      f"--config={os.path.join(REPO_ROOT, 'configs', 'demo.py')}", f"--data_dir={data_dir}",
      f"--workdir={workdir}", *(f"--config.{k}={v}" for k, v in flags.items())
  ]


def cli_env(**extra) -> dict:
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
          "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")]), **extra}


def test_two_worker_job_matches_one_worker(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=NUM_IMAGES)
  workdir, export_dir = str(tmp_path / "work"), str(tmp_path / "saved_models")
  command = cli_command(root, workdir, export_dir,
                        **{"strategy": "multi_worker", "train.batch_size": 12})
  outputs = run_two_workers(command, str(tmp_path))
  assert "2 replica(s) in sync; global batch 24" in outputs[0]
  assert "exported:" in outputs[0] and "exported:" not in outputs[1]  # only the chief exports
  assert os.listdir(os.path.join(export_dir, "tiny")) == ["1"]
  # Both workers logged the same epochs: metrics and calibrated F1 cover the whole validation split.
  epoch_logs = [
      [line for line in output.splitlines() if "val_micro_f1:" in line] for output in outputs
  ]
  assert len(epoch_logs[0]) == 3 and [line.split("step - ")[1] for line in epoch_logs[0]] == \
      [line.split("step - ")[1] for line in epoch_logs[1]]

  cfg = config_lib.base_config()
  for key, value in {**OVERRIDES, "train.batch_size": 24}.items():
    group, field = key.split(".")
    cfg[group][field] = value
  single = training.train(cfg, root, str(tmp_path / "single"))
  two_worker = keras.saving.load_model(os.path.join(workdir, "model.keras"), safe_mode=True)
  test_frame = split_corpus.load_and_split(root, cfg).test
  images = pipeline.make_dataset(test_frame["path"].to_numpy(),
                                 test_frame[single.label_names].to_numpy(), image_size=16,
                                 batch_size=8, training=False).map(lambda x, y: x)
  difference = np.abs(two_worker.predict(images, verbose=0)["probabilities"]
                      - single.model.predict(images, verbose=0)).max()
  print(f"max |p_2workers - p_1worker| = {difference:.2e}")
  assert difference <= PROBABILITY_TOLERANCE
  f1_two = pd.read_csv(os.path.join(workdir, "history.csv"))["val_micro_f1"].to_numpy()
  print(f"val_micro_f1 per epoch: 2 workers {f1_two}, 1 worker {single.history['val_micro_f1']}")
  np.testing.assert_allclose(f1_two, single.history["val_micro_f1"], atol=F1_TOLERANCE)
  report = json.load(open(os.path.join(workdir, "report.json")))
  assert report["num_images"] == len(test_frame) == 12


PREDICT_SCRIPT = textwrap.dedent("""
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from mlc_tf.train import distribute
    strategy = distribute.make_strategy("multi_worker")
    rows = np.arange(30, dtype=np.float32).reshape(10, 3)
    with strategy.scope():
      inputs = keras.Input((3,))
      model = distribute.for_strategy(keras.Model(inputs, keras.layers.Dense(2)(inputs)), strategy)
    # As CalibratedValidationF1 predicts: global batches (4 + 4 + a short 2), each worker takes its
    # slices.
    images = tf.data.Dataset.from_tensor_slices(rows).batch(4).with_options(
        distribute.data_sharded_options())
    predicted = model.predict(images, verbose=0)
    kernel, bias = model.get_weights()
    print(json.dumps({"rows": len(predicted),
                      "error": float(np.abs(predicted - (rows @ kernel + bias)).max())}))
""")


def run_two_workers(args: list[str], cwd: str, timeout: int = 420) -> list[str]:
  """Runs ``args`` as workers 0 and 1 of a 127.0.0.1 cluster; returns their outputs, checking both
  exit 0."""
  cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
  workers = []
  try:
    for index in range(2):
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
      workers.append(subprocess.Popen(args, env=cli_env(TF_CONFIG=tf_config), cwd=cwd,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [worker.communicate(timeout=timeout)[0] for worker in workers]
  finally:
    for worker in workers:
      if worker.poll() is None:
        worker.kill()
        worker.wait()
  for index, (worker, output) in enumerate(zip(workers, outputs)):
    assert worker.returncode == 0, f"worker {index}:\n{output[-4000:]}"
  return outputs


def test_two_worker_predictions_cover_every_row_in_order(tmp_path):
  """What threshold calibration relies on: predict under 2 workers returns all rows, in dataset
  order."""
  for output in run_two_workers([sys.executable, "-c", PREDICT_SCRIPT], str(tmp_path), timeout=300):
    result = json.loads(output.strip().splitlines()[-1])
    assert result["rows"] == 10 and result["error"] < 1e-4, result
