"""The tf.data input pipeline: read -> decode_and_resize -> cache -> balance -> shuffle -> batch -> augment -> prefetch.

``decode_and_resize`` is the one place where encoded bytes become a model
input; the export graph (``mlc_tf.serving.export``) calls the same function, so a
served model sees exactly what training saw. Images are float32 in [0, 255]
(the models rescale them first), which is also the value range Keras'
preprocessing layers expect.
"""

from __future__ import annotations

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from mlc_tf.data import balance, image_formats

AUTOTUNE = tf.data.AUTOTUNE


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
  """Encoded JPEG/PNG/GIF/BMP bytes -> float32 [image_size, image_size, 3] in [0, 255].

  Grayscale becomes 3 identical channels, alpha is dropped, a GIF gives its
  first frame, and 16-bit images are scaled to 8-bit range.
  """
  # PNG may be 16-bit: dtype=float32 scales it by its own range (/65535), where uint8 or uint16 would
  # truncate it or scale 8-bit images by 256, not 257. JPEG/GIF/BMP are 8-bit, decoded as uint8: TF 2.21's
  # float32 JPEG decode leaks its scratch buffer (H x W x 3 bytes) on every truncated or corrupt JPEG,
  # which a server receiving bad uploads would accumulate (docs/serving.md, "Soak").
  image = tf.cond(
      image_formats.is_png(image_bytes),
      lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.float32) * 255.0,
      lambda: tf.cast(tf.io.decode_image(image_bytes, channels=3, expand_animations=False), tf.float32))
  image = resize(image, image_size)
  image.set_shape((image_size, image_size, 3))
  return image


def resize(pixels: tf.Tensor, image_size: int) -> tf.Tensor:
  """Float pixels [..., H, W, 3] in [0, 255] -> [..., image_size, image_size, 3] in [0, 255].

  The one resize of the project: ``decode_and_resize`` uses it, and so does
  the export's ``predict_pixels`` signature for callers that send pixels.
  """
  pixels = tf.image.resize(pixels, (image_size, image_size), method="bilinear", antialias=True)
  return tf.clip_by_value(pixels, 0.0, 255.0)


def build_augmenter(cfg: ml_collections.ConfigDict, seed: int) -> keras.Sequential | None:
  """Keras preprocessing layers for training-time augmentation, from ``cfg`` (config.augment)."""
  layers = []
  if cfg.get("flip"):
    layers.append(keras.layers.RandomFlip(cfg.flip, seed=seed))
  if cfg.get("rotation"):
    layers.append(keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect", seed=seed))
  if cfg.get("shear"):
    layers.append(keras.layers.RandomShear(x_factor=cfg.shear, y_factor=cfg.shear, fill_mode="reflect", seed=seed))
  if cfg.get("zoom"):
    layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=seed))
  if cfg.get("brightness"):
    layers.append(keras.layers.RandomBrightness(cfg.brightness, value_range=(0, 255), seed=seed))
  if cfg.get("contrast"):
    layers.append(keras.layers.RandomContrast(cfg.contrast, value_range=(0, 255), seed=seed))
  if cfg.get("saturation"):
    layers.append(keras.layers.RandomSaturation(cfg.saturation, value_range=(0, 255), seed=seed))
  if cfg.get("hue"):
    layers.append(keras.layers.RandomHue(cfg.hue, value_range=(0, 255), seed=seed))
  if cfg.get("grayscale"):
    layers.append(keras.layers.RandomGrayscale(cfg.grayscale, seed=seed))
  return keras.Sequential(layers, name="augment") if layers else None


def make_dataset(images: list[str] | np.ndarray | tf.data.Dataset,
                 labels: np.ndarray,
                 *,
                 image_size: int,
                 batch_size: int,
                 training: bool,
                 augment: ml_collections.ConfigDict | None = None,
                 seed: int = 0,
                 cache: bool | str = True,
                 drop_remainder: bool = False,
                 sample_counts: np.ndarray | None = None) -> tf.data.Dataset:
  """A batched dataset of (images float32 [B, S, S, 3] in [0, 255], labels float32 [B, L]).

  ``images`` are image file paths (read here), or a dataset of encoded image
  bytes in the order of ``labels``' rows (TFDS records, see
  ``mlc_tf.data.sources``); both meet the same ``decode_and_resize``.
  Decoded, resized images are cached (in memory, or in a file prefix when
  ``cache`` is a string) before shuffling and augmentation, so epochs after
  the first decode nothing. Training datasets are shuffled with ``seed`` each
  epoch and augmented per batch; evaluation datasets keep their order.
  ``sample_counts`` (training only; see ``balance.expected_counts``) re-balances
  the data: image ``i`` appears ``sample_counts[i]`` times per pass on average,
  and the dataset repeats endlessly, so fit it with ``steps_per_epoch``.
  """
  labels = np.asarray(labels, np.float32)
  if isinstance(images, tf.data.Dataset):
    num_images, read = int(images.cardinality()), tf.identity
    if num_images < 0:
      raise ValueError("the images dataset must have a known length (tf.data.experimental.assert_cardinality)")
    encoded = images
  else:
    num_images, read = len(images), tf.io.read_file
    encoded = tf.data.Dataset.from_tensor_slices(np.asarray(images, dtype=str))
  if num_images != len(labels):
    raise ValueError(f"{num_images} images but {len(labels)} label rows")
  if num_images == 0:
    raise ValueError("no images to make a dataset from")
  if sample_counts is not None and len(sample_counts) != len(labels):
    raise ValueError(f"{len(sample_counts)} sample counts but {len(labels)} images")
  ds = tf.data.Dataset.zip(encoded, tf.data.Dataset.from_tensor_slices(labels))
  ds = ds.map(lambda image, y: (decode_and_resize(read(image), image_size), y),
              num_parallel_calls=AUTOTUNE, deterministic=True)
  if cache:
    ds = ds.cache(cache if isinstance(cache, str) else "")
  if training and sample_counts is not None:
    ds = balance.resample(ds, sample_counts, seed).repeat()  # epochs vary in length: fit by steps
  if training:
    ds = ds.shuffle(min(len(labels), 10_000), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
  augmenter = build_augmenter(augment, seed) if (training and augment) else None
  if augmenter is not None:
    ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)
