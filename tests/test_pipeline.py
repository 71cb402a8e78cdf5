import io

import image_bytes
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline, stratification
from mlc_tf.train import distribute


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
  # 8-bit range, 16-bit scaled down
  assert 0.0 <= out.min() and out.max() <= 255.0 and out.max() > 150
  if mode in ("L", "I;16"):
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-4)  # gray -> 3 equal channels
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-4)


SMALL = np.full((6, 10, 3), 128, np.uint8)


@pytest.mark.parametrize("name, data, pixels", [
    ("a frame larger than the GIF's 1 x 1 screen", image_bytes.gif_bomb(20), 400),
    ("a GIF's second frame", image_bytes.gif_with_second_frame(SMALL, 20), 60 + 400),
    ("a PNG", image_bytes.encode(np.zeros((20, 20, 3), np.uint8), "PNG"), 400),
])
def test_decode_and_resize_refuses_images_over_the_pixel_limit_before_decoding(name, data, pixels):
  pipeline.decode_and_resize(tf.constant(data), 4, max_image_pixels=pixels)  # at the limit: decodes
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"larger than the .* MP limit \({pixels - 1} pixels\)"):
    pipeline.decode_and_resize(tf.constant(data), 4, max_image_pixels=pixels - 1)
  ds = tf.data.Dataset.from_tensors(tf.constant(data)).map(
      lambda b: pipeline.decode_and_resize(b, 4, pixels - 1))
  # the same refusal inside tf.data (training, mlc-predict)
  assert len(list(ds.ignore_errors())) == 0


def test_decode_and_resize_refuses_a_palette_bmp():
  with pytest.raises(tf.errors.InvalidArgumentError, match="palette BMP is not supported"):
    pipeline.decode_and_resize(tf.constant(image_bytes.palette_bmp(SMALL)), 4)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP"])
def test_decode_and_resize_keeps_8_bit_values(fmt):
  # Lossless 8-bit formats at their own size come back as the very pixel values, so the export's
  # predict_pixels (0-255 floats) and its image_bytes path see the same numbers.
  pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3)).astype(np.uint8)
  image = Image.fromarray(pixels)
  expected = np.asarray(image.quantize(256).convert("RGB") if fmt == "GIF" else image, np.float32)
  out = pipeline.decode_and_resize(
      tf.constant(_encode(image if fmt != "GIF" else image.quantize(256), fmt)), 12)
  np.testing.assert_allclose(pipeline.resize(tf.constant(expected), 12).numpy(), out.numpy(),
                             atol=1e-3)


def _smooth_photo(height: int, width: int) -> Image.Image:
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  channels = [np.sin(3 * x + 1), np.cos(4 * y), np.sin(2 * (x + y))]
  return Image.fromarray((127.5 + 127 * np.stack(channels, -1)).astype(np.uint8))


@pytest.mark.parametrize("height, width, image_size, decoded", [
    (200, 256, 32, (50, 64)),  # 1/4: 1/8 would leave a 25-px side
    (200, 256, 25, (25, 32)),  # 1/8
    (201, 256, 26, (26, 32)),  # libjpeg rounds a scaled side up: ceil(201 / 8) = 26
    (200, 256, 101, (200, 256)),  # 1/2 would leave 100 < 101: a full decode
    (128, 128, 64, (64, 64)),  # the corpus's photos for a 64-px model: 1/2, nothing left to resize
])
def test_decode_jpeg_downscaled_takes_the_smallest_scale_that_keeps_the_model_size(
    height, width, image_size, decoded):
  data = tf.constant(_encode(_smooth_photo(height, width), "JPEG"))
  assert tuple(pipeline.decode_jpeg_downscaled(data, image_size).shape) == (*decoded, 3)
  assert pipeline.decode_and_resize(data, image_size).shape == (image_size, image_size, 3)


@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_decode_and_resize_of_a_jpeg_is_close_to_a_full_decode_and_resize(image_size):
  # The DCT-domain downscale is a filter of its own, not the antialiased bilinear one: close, not
  # equal.
  data = tf.constant(_encode(_smooth_photo(300, 400), "JPEG"))
  full = pipeline.resize(tf.cast(tf.io.decode_jpeg(data, channels=3), tf.float32),
                         image_size).numpy()
  difference = np.abs(pipeline.decode_and_resize(data, image_size).numpy() - full)
  # read: 0.9-1.4, 3-4
  assert difference.mean() < 2.5 and difference.max() < 8, (difference.mean(), difference.max())


def test_a_damaged_jpeg_fails_or_decodes_alike_at_every_scale():
  # The corpus audit decodes at image_size 1 (a 1/8 scale) what training decodes at its own size:
  # libjpeg reads every coefficient at any scale, so a file the audit passes does not fail
  # mid-epoch.
  data = _encode(_smooth_photo(256, 256), "JPEG")
  damaged = [data[:int(len(data) * fraction)] for fraction in (0.3, 0.6, 0.9, 0.99)]
  damaged += [data[:n] + bytes([data[n] ^ 0xFF]) + data[n + 1:]
              for n in range(len(data) // 3, len(data) - 2, 97)]

  def decodes(image_bytes, image_size):
    try:
      pipeline.decode_and_resize(tf.constant(image_bytes), image_size)
      return True
    except tf.errors.InvalidArgumentError:
      return False

  outcomes = [(decodes(image, 1), decodes(image, 256)) for image in damaged]
  assert all(at_one_eighth == at_full for at_one_eighth, at_full in outcomes), outcomes
  assert {False} <= {at_full for _, at_full in outcomes}  # some are refused: the damage is real


def test_make_dataset_batches(tiny_corpus):
  root, _ = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root)
  labels = corpus_lib.label_columns(frame)
  ds = pipeline.make_dataset(frame["path"].to_numpy(), frame[labels].to_numpy(), image_size=12,
                             batch_size=5,
                             training=False)
  batches = list(ds)
  assert sum(len(y) for _, y in batches) == len(frame)
  x, y = batches[0]
  assert x.shape == (5, 12, 12, 3) and x.dtype == tf.float32 and y.dtype == tf.float32
  # evaluation keeps the order
  np.testing.assert_array_equal(y.numpy(), frame[labels].to_numpy()[:5])
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
  assert (not np.array_equal(y1.numpy(), frame[labels].to_numpy())
          or not np.array_equal(y1.numpy(), y2.numpy()))
  assert np.isfinite(x1.numpy()).all() and float(tf.reduce_max(x1)) <= 255.0 + 1e-3


def test_split_keeps_label_proportions():
  rng = np.random.default_rng(0)
  targets = (rng.random((2000, 5)) < [0.5, 0.2, 0.1, 0.05, 0.02]).astype(int)
  train, val, test = stratification.train_val_test_split(targets, 0.15, 0.15, seed=0)
  assert (len(set(train) | set(val) | set(test)) == 2000
          and not (set(train) & set(val) | set(val) & set(test)))
  assert abs(len(test) - 300) <= 5 and abs(len(val) - 300) <= 5
  for part in (train, val, test):
    np.testing.assert_allclose(targets[part].mean(axis=0), targets.mean(axis=0), atol=0.02)
    empty = (targets[part].sum(axis=1) == 0).mean()
    assert abs(empty - (targets.sum(axis=1) == 0).mean()) < 0.03


def _encoded_images(count, size=20, seed=0):
  rng = np.random.default_rng(seed)
  blobs = [tf.io.encode_jpeg(rng.integers(0, 256, (size, size, 3),
                                          dtype=np.uint8)).numpy() for _ in range(count)]
  return tf.data.Dataset.from_tensor_slices(blobs)


def test_decoded_images_are_whole_intensities_so_the_uint8_cache_is_lossless():
  blob = next(iter(_encoded_images(1)))
  image = pipeline.decode_and_resize(blob, 13).numpy()
  np.testing.assert_array_equal(image, np.round(image))
  cached = pipeline.make_dataset(_encoded_images(1), np.zeros((1, 2)), image_size=13, batch_size=1,
                                 training=False)
  np.testing.assert_array_equal(next(iter(cached))[0].numpy()[0], image)


def test_every_image_augmentation_of_the_table_runs_and_keeps_labels():
  augment = ml_collections.ConfigDict(dict(flip="horizontal", translate=0.125, randaugment=2,
                                           erasing=1.0))
  labels = np.eye(4, dtype=np.float32)
  ds = pipeline.make_dataset(_encoded_images(4), labels, image_size=16, batch_size=4, training=True,
                             augment=augment, seed=0, cache=False)
  plain = pipeline.make_dataset(_encoded_images(4), labels, image_size=16, batch_size=4,
                                training=False)
  x, y = next(iter(ds))
  assert (x.shape == (4, 16, 16, 3) and float(tf.reduce_min(x)) >= 0
          and float(tf.reduce_max(x)) <= 255)
  assert sorted(map(tuple, y.numpy())) == sorted(map(tuple, labels))  # shuffled, not mixed
  assert not np.allclose(np.sort(x.numpy(), axis=None),
                         np.sort(next(iter(plain))[0].numpy(), axis=None))


@pytest.mark.parametrize("field,value", [("mixup", 0.4), ("cutmix", 1.0)])
def test_label_mixing_augmentations_mix_the_label_vectors_too(field, value):
  augment = ml_collections.ConfigDict({field: value})
  labels = np.eye(8, dtype=np.float32)
  ds = pipeline.make_dataset(_encoded_images(8, size=32), labels, image_size=32, batch_size=8,
                             training=True,
                             augment=augment, seed=3, cache=False)
  _, y = next(iter(ds))
  y = y.numpy()
  np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)  # convex mixtures of one-hot rows
  assert ((y > 0.01) & (y < 0.99)).any()  # some rows mix two images' labels


def test_augmentation_computes_in_float32_under_a_mixed_precision_policy():
  augment = ml_collections.ConfigDict(dict(flip="horizontal", brightness=0.1, contrast=0.1,
                                           mixup=0.2, cutmix=1.0))
  # as training builds its pipeline with config.train.precision
  with distribute.precision("mixed_bfloat16"):
    ds = pipeline.make_dataset(_encoded_images(8, size=32), np.eye(8, dtype=np.float32),
                               image_size=32,
                               batch_size=8, training=True, augment=augment, seed=3, cache=False)
    x, y = next(iter(ds))
  assert x.dtype == tf.float32 and y.dtype == tf.float32
  np.testing.assert_allclose(y.numpy().sum(axis=1), 1.0, atol=1e-5)


def test_an_unknown_augmentation_is_named_in_the_error():
  with pytest.raises(ValueError, match="unknown augmentation.*'flipp'"):
    pipeline.build_augmenter(ml_collections.ConfigDict(dict(flipp="horizontal")), seed=0)
