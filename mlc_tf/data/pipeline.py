"""tf.data input pipeline.

read -> decode_and_resize -> cache (uint8) -> balance -> shuffle -> batch -> augment -> prefetch.

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


def decode_and_resize(image_bytes: tf.Tensor, image_size: int,
                      max_image_pixels: int = image_formats.MAX_IMAGE_PIXELS) -> tf.Tensor:
  """Decodes JPEG/PNG/GIF/BMP bytes into float32 [image_size, image_size, 3] in [0, 255].

  Grayscale becomes 3 identical channels, alpha is dropped, a GIF gives its
  first frame, and 16-bit images are scaled to 8-bit range. A JPEG is
  decoded downscaled in the DCT domain where it is at least twice the size
  (``decode_jpeg_downscaled``): the first epoch's decode, and a large photo's
  above all, costs a fraction of a full decode and resize. Refused with
  InvalidArgumentError before decoding: an image whose headers announce more
  than ``max_image_pixels`` (a decompression bomb), a GIF of too many blocks
  to count its pixels (``image_formats.MAX_GIF_BLOCKS``) and a palette BMP
  (TensorFlow would decode it to the wrong colours), so training, the export,
  ``mlc-predict`` and the review app all take the same files.
  """
  pixels = image_formats.decoded_pixel_count(image_bytes)
  checked = tf.debugging.assert_none_equal(pixels, tf.constant(image_formats.GIF_UNCHECKED,
                                                               tf.int64),
                                           message=image_formats.GIF_TOO_MANY_BLOCKS)
  with tf.control_dependencies([checked]):  # its reason first: the checks below refuse it too
    pixels = tf.identity(pixels)
  known = tf.debugging.assert_positive(
      pixels, message="not a JPEG, PNG, GIF or BMP image, or one of no pixels")
  limit = tf.debugging.assert_less_equal(
      pixels, tf.constant(max_image_pixels, tf.int64),
      message=f"larger than the {max_image_pixels / 1e6:g} MP limit ({max_image_pixels} pixels)")
  palette = tf.debugging.assert_equal(image_formats.is_palette_bmp(image_bytes), False,
                                      message=image_formats.PALETTE_BMP)
  with tf.control_dependencies([known, limit, palette]):
    image_bytes = tf.identity(image_bytes)  # decode only what passed the header checks
  # PNG may be 16-bit: dtype=float32 scales it by its own range (/65535), where uint8 or uint16
  # would truncate it or scale 8-bit images by 256, not 257. JPEG/GIF/BMP are 8-bit, decoded as
  # uint8: TF 2.21's float32 JPEG decode leaks its scratch buffer (H x W x 3 bytes) on every
  # truncated or corrupt JPEG, which a server receiving bad uploads would accumulate
  # (docs/serving.md, "Soak").
  image = tf.case(
      [
          (image_formats.is_png(image_bytes), lambda: tf.io.decode_image(
              image_bytes, channels=3, expand_animations=False, dtype=tf.float32) * 255.0),
          (image_formats.is_jpeg(image_bytes),
           lambda: tf.cast(decode_jpeg_downscaled(image_bytes, image_size), tf.float32)),
      ],
      default=lambda: tf.cast(tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
                              tf.float32),
      exclusive=False)
  # An image already at the model's size skips the resize (which would leave it as it is) but not
  # its rounding.
  image = tf.cond(tf.reduce_all(tf.equal(tf.shape(image)[:2], image_size)), lambda: tf.round(image),
                  lambda: resize(image, image_size))
  image.set_shape((image_size, image_size, 3))
  return image


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its size from fewer DCT coefficients per block (PIL's
# Image.draft does the same), for a fraction of a full decode's work: a downscale on the way in.
_JPEG_SCALES = (1, 2, 4, 8)


def decode_jpeg_downscaled(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
  """Decodes a JPEG into uint8 [H, W, 3] at its smallest scale with both sides >= image_size.

  The scales are libjpeg's 1/1, 1/2, 1/4 and 1/8.

  The resize that follows has less left to shrink, or nothing (a 128-px JPEG
  decoded at 1/2 for a 64-px model), and never enlarges what a full decode
  would not have.
  """
  height_width = tf.io.extract_jpeg_shape(image_bytes)[:2]
  shorter = tf.reduce_min(height_width)
  # libjpeg's side at scale 1/s is ceil(side / s); the scales are in order, so the count that keep
  # image_size is the index of the smallest of them.
  scale_index = tf.add_n(
      [tf.cast((shorter + s - 1) // s >= image_size, tf.int32) for s in _JPEG_SCALES[1:]])
  return tf.switch_case(scale_index, [
      lambda s=s: tf.io.decode_jpeg(image_bytes, channels=3, ratio=s) for s in _JPEG_SCALES])


def resize(pixels: tf.Tensor, image_size: int) -> tf.Tensor:
  """Resizes float pixels [..., H, W, 3] in [0, 255] to [..., image_size, image_size, 3].

  The values stay in [0, 255].


  The one resize of the project: ``decode_and_resize`` uses it, and so does
  the export's ``predict_pixels`` signature for callers that send pixels.
  """
  pixels = tf.image.resize(pixels, (image_size, image_size), method="bilinear", antialias=True)
  # Whole intensities, as 8-bit images have: the training cache holds them as uint8 without loss,
  # and serving rounds the same way.
  return tf.round(tf.clip_by_value(pixels, 0.0, 255.0))


# config.augment field -> the Keras preprocessing layer its value switches on (0 / "" / False: off),
# in the order they run on a batch of images. Values: flip a mode ("horizontal"...); rotation a
# fraction of a full turn; translate a fraction of the side (random crop of a zero-padded image);
# randaugment the number of RandAugment ops per image; erasing the probability of erasing a random
# rectangle; the others Keras' factors.
_IMAGE_AUGMENTATIONS = {
    "flip":
        lambda value, **common: keras.layers.RandomFlip(value, **common),
    "translate":
        lambda value, **common: keras.layers.RandomTranslation(
            value, value, fill_mode="constant", **common),
    "rotation":
        lambda value, **common: keras.layers.RandomRotation(value, fill_mode="reflect", **common),
    "shear":
        lambda value, **common: keras.layers.RandomShear(
            x_factor=value, y_factor=value, fill_mode="reflect", **common),
    "zoom":
        lambda value, **common: keras.layers.RandomZoom(value, fill_mode="reflect", **common),
    "brightness":
        lambda value, **common: keras.layers.RandomBrightness(value, value_range=(0, 255), **common
                                                             ),
    "contrast":
        lambda value, **common: keras.layers.RandomContrast(value, value_range=(0, 255), **common),
    "saturation":
        lambda value, **common: keras.layers.RandomSaturation(value, value_range=(0, 255), **common
                                                             ),
    "hue":
        lambda value, **common: keras.layers.RandomHue(value, value_range=(0, 255), **common),
    "grayscale":
        lambda value, **common: keras.layers.RandomGrayscale(value, **common),
    "randaugment":
        lambda value, **common: keras.layers.RandAugment(
            value_range=(0, 255), num_ops=int(value), **common),
    "erasing":
        lambda value, **common: keras.layers.RandomErasing(
            factor=value, value_range=(0, 255), **common),
}
# The input pipeline computes in float32 whatever the model's precision (config.train.precision):
# under a mixed policy Keras' layers would compute in 16 bits, lose 8-bit pixel values and fail on
# float32 labels (MixUp).
_AUGMENTATION_DTYPE = "float32"
# Augmentations that mix two images of a batch, and so their label vectors too (soft targets for
# BCE): mixup is MixUp's alpha, cutmix CutMix's factor.
_LABEL_MIXING_AUGMENTATIONS = {
    "mixup": lambda value, **common: keras.layers.MixUp(alpha=value, **common),
    "cutmix": lambda value, **common: keras.layers.CutMix(factor=value, **common),
}


def build_augmenter(cfg: ml_collections.ConfigDict, seed: int) -> keras.Sequential | None:
  """Builds Keras preprocessing layers for training-time image augmentation.

  ``cfg`` is config.augment; None when it asks for no image augmentation.
  """
  unknown = sorted(set(cfg) - set(_IMAGE_AUGMENTATIONS) - set(_LABEL_MIXING_AUGMENTATIONS))
  if unknown:
    raise ValueError(
        f"unknown augmentation(s) {unknown}; known: "
        f"{', '.join(sorted({**_IMAGE_AUGMENTATIONS, **_LABEL_MIXING_AUGMENTATIONS}))}")
  layers = [
      make(cfg[name], seed=seed, dtype=_AUGMENTATION_DTYPE)
      for name, make in _IMAGE_AUGMENTATIONS.items()
      if cfg.get(name)
  ]
  return keras.Sequential(layers, name="augment") if layers else None


def build_label_mixers(cfg: ml_collections.ConfigDict, seed: int) -> list[keras.layers.Layer]:
  """Builds the MixUp / CutMix layers that ``cfg`` (config.augment) asks for.

  Each maps {"images", "labels"} to mixed ones.
  """
  return [
      make(cfg[name], seed=seed, dtype=_AUGMENTATION_DTYPE)
      for name, make in _LABEL_MIXING_AUGMENTATIONS.items()
      if cfg.get(name)
  ]


def _augment(augmenter: keras.Sequential | None, mixers: list[keras.layers.Layer]):
  def augment(images, labels):
    if augmenter is not None:
      images = augmenter(images, training=True)
    for mixer in mixers:
      mixed = mixer({"images": images, "labels": labels}, training=True)
      images, labels = mixed["images"], mixed["labels"]
    return images, labels
  return augment


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
  """Makes a batched dataset of (images float32 [B, S, S, 3] in [0, 255], labels float32 [B, L]).

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

  Args:
    images: image file paths, or a dataset of encoded image bytes in ``labels``' row order.
    labels: [N, L] targets, one row per image.
    image_size: side S of the square model input.
    batch_size: images per batch.
    training: shuffle, augment and re-balance; otherwise keep the order.
    augment: config.augment, the training-time augmentations; None for none.
    seed: seed of the shuffle, the augmentations and the re-balancing.
    cache: cache decoded images: True in memory, a string as a file prefix, False not at all.
    drop_remainder: drop the last, smaller batch.
    sample_counts: expected appearances of each image per pass (training only); None for one each.

  Returns:
    The dataset, prefetched.
  """
  labels = np.asarray(labels, np.float32)
  if isinstance(images, tf.data.Dataset):
    num_images, read = int(images.cardinality()), tf.identity
    if num_images < 0:
      raise ValueError(
          "the images dataset must have a known length (tf.data.experimental.assert_cardinality)")
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
  # Cached as uint8, a quarter of float32's memory and lossless: ``resize`` rounds to whole
  # intensities.
  ds = ds.map(lambda image, y: (tf.cast(decode_and_resize(read(image), image_size), tf.uint8), y),
              num_parallel_calls=AUTOTUNE, deterministic=True)
  if cache:
    ds = ds.cache(cache if isinstance(cache, str) else "")
  if training and sample_counts is not None:
    ds = balance.resample(ds, sample_counts, seed).repeat()  # epochs vary in length: fit by steps
  if training:
    ds = ds.shuffle(min(len(labels), 10_000), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
  ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
  if training and augment:
    augmenter, mixers = build_augmenter(augment, seed), build_label_mixers(augment, seed)
    if augmenter is not None or mixers:
      ds = ds.map(_augment(augmenter, mixers), num_parallel_calls=AUTOTUNE)
  return ds.prefetch(AUTOTUNE)
