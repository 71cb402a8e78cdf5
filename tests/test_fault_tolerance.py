"""Backups: a run SIGKILLed mid-epoch and started again with the same command resumes and ends at
the same epoch."""

import json
import os
import signal
import subprocess
import time

import keras
import numpy as np
import pandas as pd
from helpers import make_tiny_corpus
from test_distribute import cli_command, cli_env

from mlc_tf.train import callbacks

EPOCHS, STEPS, EVERY = 3, 40, 2


def read_backup(workdir: str) -> dict | None:
  """The published backup's metadata, or None (none yet, or repointed while reading)."""
  try:
    with open(os.path.join(workdir, "backup", "state", "training_metadata.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def test_sigkill_mid_epoch_then_same_command_resumes(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=40)
  workdir = str(tmp_path / "work")
  command = cli_command(
      root, workdir, str(tmp_path / "saved_models"), **{
          "train.epochs": EPOCHS, "train.steps_per_epoch": STEPS, "train.batch_size": 4,
          "train.backup_every_steps": EVERY
      })
  # Kill when a backup from the first half of epoch 2 or later is published: at least STEPS/2 steps
  # remain before that epoch ends, so the kill lands mid-epoch.
  run = subprocess.Popen(command, env=cli_env(), cwd=str(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
  killed = False
  try:
    deadline = time.monotonic() + 300
    while not killed and time.monotonic() < deadline and run.poll() is None:
      state = read_backup(workdir)
      if state and state["epoch"] >= 1 and 0 < state["batch"] < STEPS // 2:
        run.send_signal(signal.SIGKILL)
        killed = True
      time.sleep(0.01)
  finally:
    if run.poll() is None:
      run.kill()
    output = run.communicate(timeout=60)[0]
  assert killed and run.returncode == -signal.SIGKILL, (
      f"not killed mid-run (rc {run.returncode}):\n{output[-3000:]}")
  state = read_backup(workdir)
  # the surviving backup is a mid-epoch one: the kill landed mid-epoch
  assert state["batch"] > 0, state
  resume_epoch = state["epoch"]
  logged_before = pd.read_csv(os.path.join(workdir, "history.csv"))
  assert list(logged_before["epoch"])[:resume_epoch] == list(range(resume_epoch))

  rerun = subprocess.run(command, env=cli_env(), cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=300)
  assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
  epochs_run = [line for line in rerun.stdout.splitlines() if line.startswith("Epoch ")]
  assert epochs_run[0] == f"Epoch {resume_epoch + 1}/{EPOCHS}", epochs_run  # resumed, not restarted
  history = pd.read_csv(os.path.join(workdir, "history.csv"))
  # the same epoch count, each epoch logged once
  assert list(history["epoch"]) == list(range(EPOCHS))
  pd.testing.assert_frame_equal(history[history["epoch"] < resume_epoch],
                                logged_before[logged_before["epoch"] < resume_epoch])
  assert os.path.exists(os.path.join(workdir, "model.keras"))
  assert not os.path.exists(os.path.join(workdir, "backup"))  # a finished run deletes its backup


def small_model() -> keras.Model:
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(keras.optimizers.Adam(0.1), "mse")
  return model


def test_backup_is_published_whole_and_restores(tmp_path):
  backup_dir = str(tmp_path / "backup")
  x, y = np.ones((8, 3), np.float32), np.zeros((8, 2), np.float32)
  os.makedirs(backup_dir)
  # what a writer killed mid-write leaves
  os.makedirs(os.path.join(backup_dir, "state-killedwrite"))
  model = small_model()
  backup = callbacks.AtomicBackupAndRestore(backup_dir, save_freq=3)
  backup.on_train_end = lambda logs=None: None  # keep the backup, as a killed run would
  model.fit(x, y, batch_size=2, epochs=2, callbacks=[backup], verbose=0)
  # One published state; the killed write's leftovers and older backups are gone.
  assert os.path.islink(os.path.join(backup_dir, "state"))
  assert [name for name in os.listdir(backup_dir) if name.startswith("state-")] == \
      [os.readlink(os.path.join(backup_dir, "state"))]
  assert backup.backed_up_epoch() == 2  # saved at the last epoch's end, not only every 3 steps

  restored = small_model()
  resumed = callbacks.AtomicBackupAndRestore(backup_dir, save_freq=3)
  history = restored.fit(x, y, batch_size=2, epochs=3, callbacks=[resumed], verbose=0)
  assert len(history.history["loss"]) == 1  # only epoch 3 was left to run
  assert not os.path.exists(backup_dir)


def test_non_writer_restores_but_never_writes(tmp_path):
  backup_dir = str(tmp_path / "backup")
  model = small_model()
  reader = callbacks.AtomicBackupAndRestore(backup_dir, write=False)
  model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, callbacks=[reader], verbose=0)
  assert not os.path.exists(backup_dir) and reader.backed_up_epoch() is None
