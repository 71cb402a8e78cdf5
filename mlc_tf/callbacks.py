"""Training callbacks."""

from __future__ import annotations

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
    self.thresholds = evaluation.f1_optimal_thresholds(self.val_targets, probs)
    micro, macro = evaluation.micro_macro_f1(self.val_targets, evaluation.decide(probs, self.thresholds))
    if logs is not None:
      logs["val_micro_f1"] = micro
      logs["val_macro_f1"] = macro
      logs["val_micro_f1_at_0.5"] = evaluation.micro_macro_f1(self.val_targets, evaluation.decide(probs, 0.5))[0]
