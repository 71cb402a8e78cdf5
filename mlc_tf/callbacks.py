"""Training callbacks."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mlc_tf import evaluation


class ThresholdCalibration(keras.callbacks.Callback):
  """At each epoch end, finds each label's F1-optimal threshold on the validation split.

  Adds to the epoch's logs, for early stopping and the CSV log:
  ``val_micro_f1`` and ``val_macro_f1`` at the calibrated thresholds, and
  ``val_micro_f1_at_0.5``. ``thresholds`` holds the latest calibration.
  Place it before callbacks that read these logs (EarlyStopping, CSVLogger).
  """

  def __init__(self, val_images: tf.data.Dataset, val_targets: np.ndarray):
    super().__init__()
    self.val_images = val_images
    self.val_targets = np.asarray(val_targets)
    self.thresholds = np.full(self.val_targets.shape[1], 0.5, np.float32)

  def on_epoch_end(self, epoch, logs=None):
    probs = self.model.predict(self.val_images, verbose=0)
    if len(probs) != len(self.val_targets):  # e.g. a strategy that dropped or padded rows
      raise ValueError(f"validation predictions cover {len(probs)} images, not all {len(self.val_targets)}")
    self.thresholds = evaluation.f1_optimal_thresholds(self.val_targets, probs)
    micro, macro = evaluation.micro_macro_f1(self.val_targets, evaluation.decide(probs, self.thresholds))
    if logs is not None:
      logs["val_micro_f1"] = micro
      logs["val_macro_f1"] = macro
      logs["val_micro_f1_at_0.5"] = evaluation.micro_macro_f1(self.val_targets, evaluation.decide(probs, 0.5))[0]


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
  """``keras.callbacks.BackupAndRestore`` whose backups are never seen half-written.

  Each backup (weights, optimizer state, epoch) is written into a fresh
  directory, then published by atomically repointing the ``state`` symlink,
  so a process killed at any instant leaves the previous or the new backup
  whole, never a new weights file beside an old epoch number. With
  ``save_freq`` a number of steps it also backs up at every epoch end.

  Only the writer (the chief, in a multi-worker job) writes and, at the end,
  deletes; every worker restores from ``backup_dir``, so all resume at the
  same point. A restart restores the epoch, not the step (Keras restarts the
  interrupted epoch from its first step, with the backed-up weights).
  """

  def __init__(self, backup_dir: str, save_freq: str | int = "epoch", write: bool = True):
    super().__init__(backup_dir, save_freq=save_freq)
    self.write = write
    self._state_dir = os.path.join(backup_dir, "state")
    self._weights_path = os.path.join(self._state_dir, "latest.weights.h5")
    self._training_metadata_path = os.path.join(self._state_dir, "training_metadata.json")

  def backed_up_epoch(self) -> int | None:
    """The epoch a restart resumes at (None without a backup)."""
    if not os.path.exists(self._training_metadata_path):
      return None
    with open(self._training_metadata_path) as f:
      return int(json.load(f)["epoch"])

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    if self.save_freq != "epoch":
      self._save_model()

  def _save_model(self):
    if not self.write:
      return
    os.makedirs(self.backup_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="state-", dir=self.backup_dir)
    self.model.save_weights(os.path.join(staging, "latest.weights.h5"))
    with open(os.path.join(staging, "training_metadata.json"), "w") as f:
      json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
    link = os.path.join(self.backup_dir, f".state-link-{os.getpid()}")
    os.symlink(os.path.basename(staging), link)
    os.replace(link, self._state_dir)  # the publishing step: atomic on POSIX
    for name in os.listdir(self.backup_dir):  # older backups and leftovers of killed writes
      if name.startswith("state-") and name != os.path.basename(staging):
        shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)

  def on_train_end(self, logs=None):
    if self.write:
      super().on_train_end(logs)
