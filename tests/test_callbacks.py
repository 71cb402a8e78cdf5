"""CalibratedValidationF1: the validation F1 early stopping watches, at each epoch's calibrated
thresholds."""

import keras
import numpy as np
import tensorflow as tf

from mlc_tf.evaluate import metrics
from mlc_tf.train import callbacks


def _validation(seed, num_images, target_dtype):
  """A 3-label dense model, its validation images and targets, and the callback on them."""
  rng = np.random.default_rng(seed)
  images = rng.random((num_images, 4)).astype(np.float32)
  targets = (rng.random((num_images, 3)) < 0.5).astype(target_dtype)
  inputs = keras.Input((4,))
  model = keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid")(inputs))
  callback = callbacks.CalibratedValidationF1(
      tf.data.Dataset.from_tensor_slices(images).batch(5), targets)
  callback.set_model(model)
  return model, images, targets, callback


def test_logs_validation_f1_at_calibrated_thresholds_and_at_one_half():
  model, images, targets, callback = _validation(0, 12, np.int32)
  logs = {}
  callback.on_epoch_end(0, logs)
  probs = model.predict(images, verbose=0)
  calibrated = metrics.decide(probs, metrics.f1_optimal_thresholds(targets, probs))
  assert (logs["val_micro_f1"], logs["val_macro_f1"]) == metrics.micro_macro_f1(targets, calibrated)
  assert logs["val_micro_f1_at_0.5"] == metrics.micro_macro_f1(targets, metrics.decide(probs,
                                                                                       0.5))[0]
  # training calibrates its thresholds once, after early stopping
  assert not hasattr(callback, "thresholds")


def test_the_one_validation_pass_logs_what_keras_evaluate_would():
  model, images, targets, callback = _validation(1, 20, np.float32)
  model.compile(loss="binary_crossentropy",
                metrics=[keras.metrics.F1Score(average="micro", threshold=0.5, name="f1_at_0.5"),
                         keras.metrics.AUC(multi_label=True, curve="PR", name="map")])
  model.fit(images, targets, epochs=1, verbose=0)
  logs = {}
  callback.on_epoch_end(0, logs)
  evaluated = model.evaluate(images, targets, return_dict=True, verbose=0)
  for name in ("loss", "f1_at_0.5", "map"):
    assert abs(logs[f"val_{name}"] - evaluated[name]) < 1e-5, name
