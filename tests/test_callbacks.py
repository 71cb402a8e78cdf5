"""CalibratedValidationF1: the validation F1 early stopping watches, at each epoch's calibrated thresholds."""

import keras
import numpy as np
import tensorflow as tf

from mlc_tf.evaluate import metrics
from mlc_tf.train import callbacks


def test_logs_validation_f1_at_calibrated_thresholds_and_at_one_half():
  rng = np.random.default_rng(0)
  images = rng.random((12, 4)).astype(np.float32)
  targets = (rng.random((12, 3)) < 0.5).astype(np.int32)
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs))
  callback = callbacks.CalibratedValidationF1(tf.data.Dataset.from_tensor_slices(images).batch(5), targets)
  callback.set_model(model)
  logs = {}
  callback.on_epoch_end(0, logs)
  probs = model.predict(images, verbose=0)
  calibrated = metrics.decide(probs, metrics.f1_optimal_thresholds(targets, probs))
  assert (logs["val_micro_f1"], logs["val_macro_f1"]) == metrics.micro_macro_f1(targets, calibrated)
  assert logs["val_micro_f1_at_0.5"] == metrics.micro_macro_f1(targets, metrics.decide(probs, 0.5))[0]
  assert not hasattr(callback, "thresholds")  # training calibrates its thresholds once, after early stopping
