import io

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline, splits


def _encode(image: Image.Image, fmt: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt)
  return buffer.getvalue()


@pytest.mark.parametrize("mode,fmt", [("RGB", "JPEG"), ("L", "JPEG"), ("RGBA", "PNG"), ("L", "PNG"),
                                      ("RGB", "BMP"), ("P", "GIF"), ("I;16", "PNG")])
def test_decode_and_resize_shapes_and_range(mode, fmt):
  pixels = np.linspace(0, 1, 20 * 30).reshape(20, 30)
  if mode == "I;16":
    image = Image.fromarray((pixels * 65535).astype(np.uint16))
  else:
    image = Image.fromarray((pixels * 255).astype(np.uint8)).convert(mode)
  out = pipeline.decode_and_resize(tf.constant(_encode(image, fmt)), 8).numpy()
  assert out.shape == (8, 8, 3) and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 255.0 and out.max() > 150  # 8-bit range, 16-bit scaled down
  if mode in ("L", "I;16"):
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-4)  # gray -> 3 equal channels
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-4)



@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_decode_and_resize_keeps_8_bit_values(fmt):
  # Lossless 8-bit formats at their own size come back as the very pixel values, so the export's
  # predict_pixels (0-255 floats) and its image_bytes path see the same numbers.
  pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3)).astype(np.uint8)
  image = Image.fromarray(pixels)
  expected = np.asarray(image.quantize(256).convert("RGB") if fmt == "GIF" else image, np.float32)
  out = pipeline.decode_and_resize(tf.constant(_encode(image if fmt != "GIF" else image.quantize(256), fmt)), 12)
  np.testing.assert_allclose(pipeline.resize(tf.constant(expected), 12).numpy(), out.numpy(), atol=1e-3)

def test_make_dataset_batches(tiny_corpus):
  root, _ = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root)
  labels = corpus_lib.label_columns(frame)
  ds = pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(), image_size=12, batch_size=5,
                             training=False)
  batches = list(ds)
  assert sum(len(y) for _, y in batches) == len(frame)
  x, y = batches[0]
  assert x.shape == (5, 12, 12, 3) and x.dtype == tf.float32 and y.dtype == tf.float32
  np.testing.assert_array_equal(y.numpy(), frame[labels].to_numpy()[:5])  # evaluation keeps the order
  assert float(tf.reduce_min(x)) >= 0 and float(tf.reduce_max(x)) <= 255


def test_training_dataset_shuffles_and_augments(tiny_corpus):
  root, _ = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root)
  labels = corpus_lib.label_columns(frame)
  augment = ml_collections.ConfigDict(dict(flip="horizontal", rotation=0.1, shear=0.1, contrast=0.2,
                                           brightness=0.1, saturation=0.2, hue=0.05, grayscale=0.3))
  ds = pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(), image_size=12,
                             batch_size=len(frame), training=True, augment=augment, seed=1)
  x1, y1 = next(iter(ds))
  x2, y2 = next(iter(ds))
  assert x1.shape == (len(frame), 12, 12, 3)
  assert not np.array_equal(y1.numpy(), frame[labels].to_numpy()) or not np.array_equal(y1.numpy(), y2.numpy())
  assert np.isfinite(x1.numpy()).all() and float(tf.reduce_max(x1)) <= 255.0 + 1e-3


def test_split_keeps_label_proportions():
  rng = np.random.default_rng(0)
  targets = (rng.random((2000, 5)) < [0.5, 0.2, 0.1, 0.05, 0.02]).astype(int)
  train, val, test = splits.train_val_test_split(targets, 0.15, 0.15, seed=0)
  assert len(set(train) | set(val) | set(test)) == 2000 and not (set(train) & set(val) | set(val) & set(test))
  assert abs(len(test) - 300) <= 5 and abs(len(val) - 300) <= 5
  for part in (train, val, test):
    np.testing.assert_allclose(targets[part].mean(axis=0), targets.mean(axis=0), atol=0.02)
    empty = (targets[part].sum(axis=1) == 0).mean()
    assert abs(empty - (targets.sum(axis=1) == 0).mean()) < 0.03
