"""Training callbacks."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mlc_tf import atomic_files
from mlc_tf.evaluate import metrics


class CalibratedValidationF1(keras.callbacks.Callback):
  """At each epoch end, logs validation F1 at that epoch's own F1-optimal per-label thresholds.

  Adds to the epoch's logs, for early stopping and the CSV log:
  ``val_micro_f1`` and ``val_macro_f1`` at the thresholds calibrated on the
  validation split, and ``val_micro_f1_at_0.5``. The thresholds themselves
  are thrown away: training calibrates the final ones once, on the weights
  early stopping keeps. Place it before callbacks that read these logs
  (EarlyStopping, CSVLogger).

  It is the epoch's one validation pass: from the same predictions it also logs
  what Keras' own pass (``fit(validation_data=...)``) would, ``val_loss`` and
  the compiled metrics' ``val_f1_at_0.5`` and ``val_map``, so the validation
  split is predicted once per epoch, not twice.
  """

  def __init__(self, val_images: tf.data.Dataset, val_targets: np.ndarray):
    super().__init__()
    self.val_images = val_images
    self.val_targets = np.asarray(val_targets)

  def on_epoch_end(self, epoch, logs=None):
    probs = self.model.predict(self.val_images, verbose=0)
    if len(probs) != len(self.val_targets):  # e.g. a strategy that dropped or padded rows
      raise ValueError(f"validation predictions cover {len(probs)} images, not all "
                       f"{len(self.val_targets)}")
    thresholds = metrics.f1_optimal_thresholds(self.val_targets, probs)
    micro, macro = metrics.micro_macro_f1(self.val_targets, metrics.decide(probs, thresholds))
    if logs is not None:
      logs.update(self._compiled_metrics(probs))
      logs["val_micro_f1"] = micro
      logs["val_macro_f1"] = macro
      logs["val_micro_f1_at_0.5"] = metrics.micro_macro_f1(self.val_targets,
                                                           metrics.decide(probs, 0.5))[0]

  def _compiled_metrics(self, probs: np.ndarray) -> dict[str, float]:
    """``val_loss`` and ``val_<metric>`` of the model's compiled loss and metrics on the validation
    predictions."""
    targets = self.val_targets.astype(np.float32)
    loss = keras.losses.get(self.model.loss) if getattr(self.model, "loss",
                                                        None) is not None else None
    # None: not compiled
    found = {"val_loss": float(ops.mean(loss(targets, probs)))} if loss is not None else {}
    for metric in self.model.metrics:  # Keras' loss tracker and a container of the compiled metrics
      for compiled in getattr(metric, "metrics", []):
        fresh = compiled.__class__.from_config(compiled.get_config())
        fresh.update_state(targets, probs)
        found[f"val_{compiled.name}"] = float(fresh.result())
    return found


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
    """Returns the epoch a restart resumes at (None without a backup)."""
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
    atomic_files.write_aside(self._state_dir,
                             lambda link: os.symlink(os.path.basename(staging), link))
    for name in os.listdir(self.backup_dir):  # older backups and leftovers of killed writes
      if name.startswith("state-") and name != os.path.basename(staging):
        shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)

  def on_train_end(self, logs=None):
    if self.write:
      super().on_train_end(logs)


class TrainingDiverged(RuntimeError):
  """The loss or the weights stopped being finite numbers; the message says where and what is
  kept."""


class StopOnNaN(keras.callbacks.Callback):
  """Stops training by raising ``TrainingDiverged`` at the first non-finite loss, or non-finite
  weight at an epoch end.

  Keras' ``TerminateOnNaN`` lets the epoch finish, so checkpoints,
  calibration and backups would run on the diverged weights; raising instead
  leaves the last epoch-end checkpoint as the last good state, which the
  message names when ``checkpoint`` is given. Place it before the callbacks
  that save (checkpoint, CSV log, backup): the weights check at the epoch end
  must run first. The loss is checked every batch (it syncs with the device,
  like ``TerminateOnNaN``); the weights once per epoch, since an update can
  make them non-finite one batch before the loss shows it.
  """

  def __init__(self, checkpoint: EpochCheckpoint | None = None):
    super().__init__()
    self.checkpoint = checkpoint

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not math.isfinite(float(loss)):
      self._stop(f"the training loss became {float(loss)} at epoch {self.epoch + 1}, batch "
                 f"{batch + 1}")

  def on_epoch_end(self, epoch, logs=None):
    if not all(np.isfinite(weight).all() for weight in self.model.get_weights()):
      self._stop(f"the weights became non-finite during epoch {epoch + 1}")

  def _stop(self, what: str):
    latest = self.checkpoint.latest if self.checkpoint else None
    kept = (f"the last good checkpoint is {latest}; resume from it, e.g. with a lower learning "
            f"rate: --config.train.resume_from={latest} --config.optimizer.learning_rate=<lower>"
            if latest else
            "no epoch had finished, so there is no checkpoint to resume from")
    raise TrainingDiverged(f"{what}; training stopped and saved nothing more: {kept}")


class EpochCheckpoint(keras.callbacks.Callback):
  """Saves the weights after every finished epoch as ``<directory>/epoch_<N>.weights.h5``, keeping
  the latest only.

  N, the number of finished epochs, is in the file name, so weights and epoch
  count can never disagree; each file appears atomically (written aside,
  then renamed), so a crash leaves the previous one intact. ``train`` resumes
  from such a file (``config.train.resume_from``). Unlike a backup, the file
  outlives the run: it is the last good state a diverged run names.
  ``latest`` is the newest file written, else ``resumed_from`` if it exists.
  Only the writer (the chief of a multi-worker job) writes.
  """

  def __init__(self, directory: str, resumed_from: str | None = None, write: bool = True):
    super().__init__()
    self.directory = directory
    self.latest = resumed_from if resumed_from and tf.io.gfile.exists(resumed_from) else None
    self.write = write

  @staticmethod
  def path(directory: str, epochs_done: int) -> str:
    return os.path.join(directory, f"epoch_{epochs_done:03d}.weights.h5")

  def on_epoch_end(self, epoch, logs=None):
    if not self.write:
      return
    path = atomic_files.write_aside(self.path(self.directory, epoch + 1), self.model.save_weights)
    self.latest = path
    for older in tf.io.gfile.glob(os.path.join(self.directory, "epoch_*.weights.h5")):
      if older != path:
        tf.io.gfile.remove(older)


_CHECKPOINT_NAME = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def checkpoint_epochs(path: str) -> int:
  """Returns how many epochs had finished when ``EpochCheckpoint`` wrote ``path``."""
  match = _CHECKPOINT_NAME.match(os.path.basename(path))
  if not match:
    raise ValueError(f"{path} is not a checkpoint written by training (expected "
                     "epoch_<N>.weights.h5)")
  return int(match.group(1))


def optional_callbacks(cfg, workdir: str) -> list[keras.callbacks.Callback]:
  """Returns the callbacks config.train switches on: best-epoch model, TensorBoard logs.

  The best-epoch model (``<workdir>/best_epoch.keras``, the model as
  trained, loadable on its own) tracks the same validation F1 as early
  stopping, so an interrupted run keeps its best epoch, not only its last.
  Both read logs that ``CalibratedValidationF1`` writes: place them after it.
  """
  callbacks = []
  if cfg.get("checkpoint_best", False):
    callbacks.append(keras.callbacks.ModelCheckpoint(
        os.path.join(workdir, "best_epoch.keras"), monitor=cfg.monitor, mode="max",
        save_best_only=True))
  if cfg.get("tensorboard", False):
    if importlib.util.find_spec("tensorboard") is None:
      raise ValueError("config.train.tensorboard needs the tensorboard package: pip install "
                       "'mlc_tf[tensorboard]'")
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard")))
  return callbacks
