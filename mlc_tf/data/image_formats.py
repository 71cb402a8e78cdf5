"""The image formats ``decode_and_resize`` reads, JPEG, PNG, GIF and BMP: everything mlc_tf knows about them.

Their leading bytes (the content decides, whatever a file's extension
says), the file extensions that name them, and where their headers keep the
image size, for the corpus audit, the decoder, the export's size guard and
``mlc-predict``'s folder listing alike.
"""

from __future__ import annotations

import re

import tensorflow as tf

EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# A corpus image file: im<ID>.<one of EXTENSIONS>, any case.
CORPUS_IMAGE_NAME = re.compile(r"^im(\d+)(" + "|".join(map(re.escape, EXTENSIONS)) + ")$", re.IGNORECASE)
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
BMP_SIGNATURE = b"BM"
SIGNATURES = (("jpeg", JPEG_SIGNATURE), ("png", PNG_SIGNATURE), *(("gif", gif) for gif in GIF_SIGNATURES),
              ("bmp", BMP_SIGNATURE))


def format_of(data: bytes) -> str | None:
  """"jpeg", "png", "gif" or "bmp" from the leading bytes of a file; None for any other content."""
  return next((kind for kind, signature in SIGNATURES if data.startswith(signature)), None)


def is_png(image_bytes: tf.Tensor) -> tf.Tensor:
  """Scalar bool tensor: the encoded image is a PNG."""
  return tf.equal(tf.strings.substr(image_bytes, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE)


def header_pixel_count(image_bytes: tf.Tensor) -> tf.Tensor:
  """Width x height (int64) read from the header of one JPEG/PNG/GIF/BMP, -1 for any other content.

  Reads only the header, so it is cheap on any input; a header too short to
  hold the size raises InvalidArgumentError, like the decoder would.
  """
  def int_pair(offset, dtype, little_endian):
    pair = tf.io.decode_raw(tf.strings.substr(image_bytes, offset, 2 * dtype.size), dtype, little_endian)
    return tf.abs(tf.cast(pair[0], tf.int64) * tf.cast(pair[1], tf.int64))  # BMP heights may be negative

  def jpeg():
    shape = tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)
    return shape[0] * shape[1]

  def starts_with(signature: bytes) -> tf.Tensor:
    return tf.equal(tf.strings.substr(image_bytes, 0, len(signature)), signature)

  return tf.case([
      (starts_with(JPEG_SIGNATURE), jpeg),
      (is_png(image_bytes), lambda: int_pair(16, tf.int32, little_endian=False)),
      (tf.reduce_any([starts_with(gif) for gif in GIF_SIGNATURES]),
       lambda: int_pair(6, tf.uint16, little_endian=True)),
      (starts_with(BMP_SIGNATURE), lambda: int_pair(18, tf.int32, little_endian=True)),
  ], default=lambda: tf.constant(-1, tf.int64), exclusive=False)
