"""A plain single-file Keras baseline for a multi-label corpus: the recipe best.py grew from,
without mlc_tf.

  python tools/export_split.py --config=configs/best.py --data_dir=../shared/datasets/flickr14 \
      --config.data.val_fraction=0.15 --config.data.test_fraction=0.15 --config.data.split_seed=0 \
      --output=workdirs/plain_s0/split.csv
  python tools/plain_baseline.py --data_dir=../shared/datasets/flickr14 \
      --split_csv=workdirs/plain_s0/split.csv --output=workdirs/plain_s0/report.json
  python tools/results_table.py --run="best.py=workdirs/best_protocol"
  --run="plain=workdirs/plain_s0"

It imports nothing from mlc_tf. The corpus: images/im<ID>.jpg and annotations/<label>.txt (one id
per line). With --split_csv (image_id,split in train/val/test; tools/export_split.py writes
mlc-train's split for a config and seed) it trains, validates and tests on exactly those images;
without it, it splits by iterative stratification itself (--val_fraction, --test_fraction,
--split_seed). The recipe: images resized to --image_size, random horizontal flips and random crops
of the image zero-padded by 1/8 of its side, a ResNet-18-shaped network (3x3 stride-1 stem, basic
blocks 2-2-2-2 of widths --width times 1-2-4-8, global average pooling, dropout, sigmoid outputs),
binary cross-entropy, AdamW with a linear warm-up and a cosine decay, in float32 with TensorFlow's
default kernels (set TF_ENABLE_ONEDNN_OPTS=1 yourself where TensorFlow leaves oneDNN off, as mlc_tf
does on AVX2-only AMD CPUs). The time budget (--budget_minutes, counted from the start of the
script, loading and the final scoring
included): the number of epochs is planned from the time of the first epoch, planned again after
each epoch that ends inside the warm-up (the rates already used stay the same), capped by --epochs;
the cosine decay ends with the plan, and training also stops when the next epoch would end past the
deadline. Each epoch chooses one threshold per label on the validation part (that label's best F1)
and scores the validation micro-F1 at them; the best epoch's weights are kept. The report (--output,
JSON; the keys tools/results_table.py reads) scores the test part at the best epoch's validation
thresholds: micro precision/recall/F1, macro-F1, the same at 0.5, mAP over the labels with
positives, per-label F1.
Unlike best.py: no label implication rules, no brightness/contrast jitter, no stride-2 fallback
network on slow CPUs, no bfloat16.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time

STARTED = time.time()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit  # noqa: E402
from sklearn import metrics  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", "../shared/datasets/flickr14",
                                "images/ + annotations/.")
_SPLIT_CSV = flags.DEFINE_string("split_csv", None, "image_id,split CSV; none: split here.")
_OUTPUT = flags.DEFINE_string("output", "plain_report.json", "The JSON report to write.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Side the images are resized to.")
_WIDTH = flags.DEFINE_integer("width", 32, "Width of the first stage (ResNet-18 proper: 64).")
_DROPOUT = flags.DEFINE_float("dropout", 0.3, "Dropout before the output layer.")
_EPOCHS = flags.DEFINE_integer("epochs", 40, "The most epochs to train.")
_BUDGET = flags.DEFINE_float("budget_minutes", 60.0, "Wall time of the whole script.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Training batch size.")
_LR = flags.DEFINE_float("learning_rate", 2e-3, "Peak learning rate.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 5e-4, "AdamW's weight decay.")
_WARMUP = flags.DEFINE_float("warmup_epochs", 2.0, "Linear warm-up, in epochs.")
_MIN_LR = flags.DEFINE_float("min_lr_fraction", 0.01,
                             "Learning rate at the end, as a fraction of the peak.")
_VAL = flags.DEFINE_float("val_fraction", 0.15, "Validation share (without --split_csv).")
_TEST = flags.DEFINE_float("test_fraction", 0.15, "Test share (without --split_csv).")
_SPLIT_SEED = flags.DEFINE_integer("split_seed", 0, "Split seed (without --split_csv).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of weights, shuffling and augmentation.")
_MAX_IMAGES = flags.DEFINE_integer("max_images", None,
                                   "Use only the first N image ids (smoke runs).")


def load_corpus(root, max_images):
  """(image ids, label names, [N, L] 0/1 targets, paths) of images/im<ID>.jpg and
  annotations/<label>.txt."""
  ids = sorted(int(name[2:-4]) for name in os.listdir(os.path.join(root, "images"))
               if name.startswith("im") and name.endswith(".jpg") and name[2:-4].isdigit())
  ids = np.array(ids[:max_images] if max_images else ids)
  labels = sorted(
      name[:-4] for name in os.listdir(os.path.join(root, "annotations")) if name.endswith(".txt"))
  row = {image_id: i for i, image_id in enumerate(ids)}
  targets = np.zeros((len(ids), len(labels)), np.float32)
  for k, label in enumerate(labels):
    with open(os.path.join(root, "annotations", f"{label}.txt")) as f:
      for line in f:
        if line.strip() and int(line) in row:
          targets[row[int(line)], k] = 1
  return ids, labels, targets, [os.path.join(root, "images", f"im{i}.jpg") for i in ids]


def read_images(paths, size):
  """The images as one [N, size, size, 3] uint8 array (grayscale JPEGs decoded to three channels).
  """
  def decode(path):
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    image = tf.image.resize(image, [size, size], antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8)
  batches = tf.data.Dataset.from_tensor_slices(paths).map(decode, tf.data.AUTOTUNE).batch(512)
  return np.concatenate([batch.numpy() for batch in batches])


def split_parts(ids, targets):
  """{"train"/"val"/"test": row positions}: --split_csv's rows, or an iterative stratification here.
  """
  if _SPLIT_CSV.value:
    table = pd.read_csv(_SPLIT_CSV.value).set_index("image_id")["split"]
    if not _MAX_IMAGES.value and set(table.index) != set(ids):
      raise ValueError(f"{_SPLIT_CSV.value} does not list the corpus's {len(ids)} images")
    split = table.reindex(ids).to_numpy()  # images not in the CSV (NaN) are left out
    return {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
  def take(rows, fraction, seed):
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    rest, taken = next(splitter.split(rows, targets[rows]))
    return np.sort(rows[rest]), np.sort(rows[taken])
  rest, test = take(np.arange(len(ids)), _TEST.value, _SPLIT_SEED.value)
  train, val = take(rest, _VAL.value / (1 - _TEST.value), _SPLIT_SEED.value + 1)
  return {"train": train, "val": val, "test": test}


def train_dataset(images, targets, size, seed):
  pad = size // 8  # 8 px at 64 px
  def augment(image, target):
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_crop(tf.pad(image, [[pad, pad], [pad, pad], [0, 0]]), [size, size, 3])
    return tf.cast(image, tf.float32), target

  return (tf.data.Dataset.from_tensor_slices((images, targets)).shuffle(len(images), seed=seed).map(
      augment, tf.data.AUTOTUNE).batch(_BATCH.value,
                                       drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def predict(model, images):
  batches = tf.data.Dataset.from_tensor_slices(images).map(
      lambda image: tf.cast(image, tf.float32)).batch(256)
  return model.predict(batches, verbose=0)


def conv_bn(x, filters, stride=1, kernel=3):
  x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
  return keras.layers.BatchNormalization()(x)


def basic_block(x, filters, stride):
  shortcut = conv_bn(x, filters, stride, kernel=1) if stride != 1 or x.shape[-1] != filters else x
  y = conv_bn(keras.layers.ReLU()(conv_bn(x, filters, stride)), filters)
  return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))


def resnet18(size, num_labels, width, dropout):
  inputs = keras.Input((size, size, 3))
  x = keras.layers.ReLU()(conv_bn(keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs), width))
  for stage in range(4):
    for block in range(2):
      x = basic_block(x, width * 2**stage, 2 if stage and not block else 1)
  x = keras.layers.Dropout(dropout)(keras.layers.GlobalAveragePooling2D()(x))
  return keras.Model(inputs, keras.layers.Dense(num_labels, activation="sigmoid")(x))


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to the peak, then a cosine decay to min_fraction of it at ``total_steps``
  (re-plannable)."""

  def __init__(self, peak, warmup_steps, total_steps, min_fraction):
    self.peak, self.warmup, self.min_fraction = peak, float(warmup_steps), min_fraction
    self.total_steps = tf.Variable(float(total_steps), trainable=False)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    progress = tf.clip_by_value(
        (step - self.warmup) / tf.maximum(self.total_steps - self.warmup, 1.0), 0.0, 1.0)
    decayed = self.min_fraction + (1 - self.min_fraction) * 0.5 * (1 + tf.cos(math.pi * progress))
    return self.peak * tf.where(step < self.warmup, (step + 1) / max(self.warmup, 1.0), decayed)


def best_thresholds(targets, probs):
  """Per label, the threshold (positive at prob >= it) of its best F1 on ``targets``; 0.5 without
  positives."""
  thresholds = np.full(targets.shape[1], 0.5)
  for k in range(targets.shape[1]):
    positives = targets[:, k].sum()
    if positives == 0:
      continue
    order = np.argsort(-probs[:, k], kind="stable")
    ranked, hits = probs[order, k], np.cumsum(targets[order, k])
    f1 = 2 * hits / (np.arange(1, len(ranked) + 1) + positives)
    f1[:-1][ranked[1:] == ranked[:-1]] = -1  # a cut only between distinct probabilities
    thresholds[k] = ranked[int(np.argmax(f1))]
  return thresholds


def scores(targets, probs, thresholds, labels):
  predicted = (probs >= thresholds).astype(int)
  p, r, f1, _ = metrics.precision_recall_fscore_support(targets,
                                                        predicted,
                                                        average="micro",
                                                        zero_division=0)
  per_label = metrics.f1_score(targets, predicted, average=None, zero_division=0)
  return {"micro": {"precision": float(p), "recall": float(r), "f1": float(f1)},
          "macro": {"f1": float(np.mean(per_label))},
          "per_label_f1": {name: float(v) for name, v in zip(labels, per_label)}}


class BudgetAndBest(keras.callbacks.Callback):
  """Plans the epochs into the deadline, stops before it, keeps the weights of the best validation
  micro-F1."""

  def __init__(self, val_images, val_targets, schedule, steps_per_epoch, deadline):
    super().__init__()
    self.val_images, self.val_targets, self.schedule = val_images, val_targets, schedule
    self.steps_per_epoch, self.deadline = steps_per_epoch, deadline
    (self.planned, self.best_f1, self.best_epoch, self.best_weights,
     self.log) = _EPOCHS.value, -1.0, 0, None, []

  def on_epoch_begin(self, epoch, logs=None):
    self.began = time.time()

  def on_epoch_end(self, epoch, logs=None):
    scoring_began = time.time()
    probs = predict(self.model, self.val_images)
    f1 = scores(self.val_targets, probs, best_thresholds(self.val_targets, probs),
                [])["micro"]["f1"]
    if f1 > self.best_f1:
      self.best_f1, self.best_epoch, self.best_weights = f1, epoch + 1, self.model.get_weights()
    now = time.time()
    seconds = now - self.began  # the last epoch's training and validation
    per_epoch = 1.05 * seconds  # with 5 % to spare
    # The final scoring: validation and test predicted once more, with room.
    reserve = 3 * (now - scoring_began)
    # Later, a new plan would change the rates already used.
    if epoch == 0 or epoch + 1 <= _WARMUP.value:
      self.planned = max(
          epoch + 1,
          min(_EPOCHS.value, epoch + 1 + int((self.deadline - now - reserve) // per_epoch)))
      self.schedule.total_steps.assign(float(self.planned * self.steps_per_epoch))
    rate = float(self.schedule(self.model.optimizer.iterations))  # the next step's
    self.log.append({
        "epoch": epoch + 1,
        "loss": float(logs["loss"]),
        "val_micro_f1": f1,
        "seconds": round(seconds, 1),
        "planned": self.planned,
        "next_learning_rate": rate
    })
    print(
        f"epoch {epoch + 1}/{self.planned}: loss {logs['loss']:.4f}, val micro-F1 {f1:.4f}, "
        f"{seconds:.0f} s, "
        f"next learning rate {rate:.2e}")
    if epoch + 1 >= self.planned or now + per_epoch + reserve > self.deadline:
      self.model.stop_training = True


def cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def main(argv):
  del argv
  keras.utils.set_random_seed(_SEED.value)
  size, deadline = _IMAGE_SIZE.value, STARTED + 60 * _BUDGET.value
  ids, labels, targets, paths = load_corpus(_DATA_DIR.value, _MAX_IMAGES.value)
  parts = split_parts(ids, targets)
  images = read_images(paths, size)
  x = {name: images[rows] for name, rows in parts.items()}
  y = {name: targets[rows] for name, rows in parts.items()}
  loaded = time.time()
  print(
      f"{len(ids)} images, {len(labels)} labels; train {len(x['train'])}, val {len(x['val'])}, "
      f"test {len(x['test'])}; loaded in {loaded - STARTED:.0f} s; CPU {cpu_model()}, "
      f"{os.cpu_count()} CPUs")

  steps = len(x["train"]) // _BATCH.value
  schedule = WarmupCosine(_LR.value, _WARMUP.value * steps, _EPOCHS.value * steps, _MIN_LR.value)
  model = resnet18(size, len(labels), _WIDTH.value, _DROPOUT.value)
  model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=_WEIGHT_DECAY.value),
                loss="binary_crossentropy")
  watch = BudgetAndBest(x["val"], y["val"], schedule, steps, deadline)
  fit_started = time.time()
  model.fit(train_dataset(x["train"], y["train"], size, _SEED.value),
            epochs=_EPOCHS.value,
            callbacks=[watch],
            shuffle=False,
            verbose=0)  # the dataset shuffles
  fit_seconds = time.time() - fit_started
  model.set_weights(watch.best_weights)

  val_probs, test_probs = predict(model, x["val"]), predict(model, x["test"])
  thresholds = best_thresholds(y["val"], val_probs)
  has_positives = y["test"].sum(axis=0) > 0
  average_precision = metrics.average_precision_score(y["test"][:, has_positives],
                                                      test_probs[:, has_positives],
                                                      average=None)
  epochs = len(watch.log)
  report = {
      "split": "test",
      "at_calibrated": scores(y["test"], test_probs, thresholds, labels),
      "at_0.5": scores(y["test"], test_probs, np.full(len(labels), 0.5), labels),
      "average_precision": {
          "map":
              float(np.mean(average_precision)),
          "per_label":
              dict(zip(np.array(labels)[has_positives].tolist(), map(float, average_precision)))
      },
      "thresholds": dict(zip(labels, map(float, thresholds))),
      "training": {
          "epochs": epochs,
          "planned_epochs": watch.planned,
          "best_epoch": watch.best_epoch,
          "best_val_micro_f1": watch.best_f1,
          "fit_seconds": round(fit_seconds, 1),
          "images_per_second": round(epochs * steps * _BATCH.value / fit_seconds, 1),
          "train_images": len(x["train"]),
          "history": watch.log
      },
      "data": {
          "images": len(ids),
          "labels": labels,
          "val_images": len(x["val"]),
          "test_images": len(x["test"]),
          "split_csv": _SPLIT_CSV.value
      },
      "machine": {
          "cpu": cpu_model(),
          "cpus": os.cpu_count(),
          "tensorflow": tf.__version__,
          "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS")
      },
      "wall_seconds": {
          "load": round(loaded - STARTED, 1),
          "fit": round(fit_seconds, 1),
          "total": round(time.time() - STARTED, 1)
      },
      "flags": {
          f.name: f.value for f in flags.FLAGS.get_flags_for_module(sys.argv[0])
      }
  }
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    json.dump(report, f, indent=2)

  cal, flat = report["at_calibrated"], report["at_0.5"]
  print(
      f"\ntest, at validation thresholds: micro P {cal['micro']['precision']:.3f}  "
      f"R {cal['micro']['recall']:.3f}  F1 {cal['micro']['f1']:.3f}  macro-F1 "
      f"{cal['macro']['f1']:.3f}  "
      f"mAP {report['average_precision']['map']:.3f}  (at 0.5: micro-F1 {flat['micro']['f1']:.3f}, "
      f"macro-F1 {flat['macro']['f1']:.3f})")
  print(f"{'label':12s} {'threshold':>9s} {'F1':>6s}")
  for name in labels:
    print(f"{name:12s} {thresholds[labels.index(name)]:9.3f} {cal['per_label_f1'][name]:6.3f}")
  print(
      f"epochs {epochs} (planned {watch.planned}, best {watch.best_epoch}); wall: load "
      f"{loaded - STARTED:.0f} s, "
      f"fit {fit_seconds:.0f} s, total {time.time() - STARTED:.0f} s; CPU {cpu_model()}; wrote "
      f"{_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
