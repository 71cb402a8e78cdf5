"""The image formats ``decode_and_resize`` reads, JPEG, PNG, GIF and BMP.

This module holds everything mlc_tf knows about them.

Their leading bytes (the content decides, whatever a file's extension
says), the file extensions that name them, how many pixels decoding one
will allocate, read from its headers, and which of their variants
TensorFlow decodes wrongly: for the corpus audit, the decoder's guard (so
training, the export, ``mlc-predict`` and the review app refuse the same
files) and ``mlc-predict``'s folder listing alike.
"""

from __future__ import annotations

import os
import re
import stat

import tensorflow as tf

EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
# A corpus image file: im<ID>.<one of EXTENSIONS>, any case.
CORPUS_IMAGE_NAME = re.compile(r"^im(\d+)(" + "|".join(map(re.escape, EXTENSIONS)) + ")$",
                               re.IGNORECASE)
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
BMP_SIGNATURE = b"BM"
# Images whose headers announce more pixels are refused before decoding: a few bytes must not make a
# process allocate gigabytes. 40 MP still admits 6000 x 6000 photos.
MAX_IMAGE_PIXELS = 40_000_000
# A GIF's frame sizes are read by a walk of its blocks and sub-blocks, at microseconds a step; one
# of more is refused unchecked. An encoder fills its data sub-blocks (255 bytes), so this admits
# 16 MB of pixel data and 4,000 frames (each with its extension), and costs a second or two at most.
MAX_GIF_BLOCKS = 8_192  # frames and extensions
MAX_GIF_SUB_BLOCKS = 65_536
GIF_UNCHECKED = -2  # decoded_pixel_count's answer for such a GIF
GIF_TOO_MANY_BLOCKS = (f"a GIF of more than {MAX_GIF_BLOCKS} blocks (frames, extensions) or "
                       f"{MAX_GIF_SUB_BLOCKS} sub-blocks, too many to check its frame sizes")
PALETTE_BMP = "palette BMP is not supported (TensorFlow would read palette indices as grey levels)"
SIGNATURES = (("jpeg", JPEG_SIGNATURE), ("png", PNG_SIGNATURE),
              *(("gif", gif) for gif in GIF_SIGNATURES), ("bmp", BMP_SIGNATURE))


def not_a_regular_file(path: str) -> str | None:
  """Says why a local ``path`` is no file to read an image from (a FIFO, a socket, a device), or
  None.

  Reading a named pipe blocks until some process writes to it: every reader
  asks this first and skips such a path with the reason. None too for a
  folder and where ``path`` cannot be examined (a remote file system's, a
  dangling link): the read fails at once and says what is wrong.
  """
  if "://" in path:
    return None
  try:
    mode = os.stat(path).st_mode
  except OSError:
    return None
  if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
    return None
  kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
          "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
  return f"not a regular file: {kind}"


def format_of(data: bytes) -> str | None:
  """Returns "jpeg", "png", "gif" or "bmp" from a file's leading bytes; None for other content."""
  return next((kind for kind, signature in SIGNATURES if data.startswith(signature)), None)


def _starts_with(image_bytes: tf.Tensor, signature: bytes) -> tf.Tensor:
  return tf.equal(tf.strings.substr(image_bytes, 0, len(signature)), signature)


def is_jpeg(image_bytes: tf.Tensor) -> tf.Tensor:
  """Tells (a scalar bool tensor) whether the encoded image is a JPEG."""
  return _starts_with(image_bytes, JPEG_SIGNATURE)


def is_png(image_bytes: tf.Tensor) -> tf.Tensor:
  """Tells (a scalar bool tensor) whether the encoded image is a PNG."""
  return _starts_with(image_bytes, PNG_SIGNATURE)


def is_palette_bmp(image_bytes: tf.Tensor) -> tf.Tensor:
  """Tells (a scalar bool tensor) whether the encoded image is a palette BMP.

  That is a BMP of at most 8 bits per pixel, whose pixels index a colour palette.
  """
  def bits_per_pixel():
    return tf.io.decode_raw(tf.strings.substr(image_bytes, 28, 2), tf.uint16, little_endian=True)[0]

  return tf.cond(_starts_with(image_bytes, BMP_SIGNATURE), lambda: bits_per_pixel() <= 8,
                 lambda: False)


def _gif_frame_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
  """Width x height summed over every image descriptor of a GIF (int64), or ``GIF_UNCHECKED``.

  TensorFlow's GIF decoder (giflib's DGifSlurp) allocates every frame at its
  own size, whatever the logical screen says and even when only the first
  frame is asked for, so the frames, not the screen, bound its memory. Walks
  the block structure: extensions and image data are chains of sub-blocks.
  The walk stops at ``MAX_GIF_BLOCKS`` blocks or ``MAX_GIF_SUB_BLOCKS``
  sub-blocks and answers ``GIF_UNCHECKED``: each step costs microseconds, and
  one-byte sub-blocks or 1x1 frames would make a few MB minutes of walking.
  """
  data = tf.io.decode_raw(image_bytes, tf.uint8)
  length = tf.shape(data, out_type=tf.int64)[0]

  def byte(position):  # 0 past the end: the walk then stops
    position = tf.cast(position, tf.int64)
    return tf.cast(tf.gather(data, tf.minimum(position, length - 1)), tf.int64) * tf.cast(
        position < length, tf.int64)

  def u16(position):
    return byte(position) + 256 * byte(position + 1)

  def colour_table(flags):  # the size of a colour table its flags byte announces
    return tf.where(flags >= 128, 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), flags % 8), 0)

  def past_sub_blocks(position, sub_blocks):
    # a chain of size-prefixed sub-blocks ends with a 0 size; the hot loop, kept to few ops
    position, sub_blocks = tf.while_loop(lambda p, n: (byte(p) > 0) & (n <= MAX_GIF_SUB_BLOCKS),
                                         lambda p, n: (p + 1 + byte(p), n + 1),
                                         (position, sub_blocks))
    return position + 1, sub_blocks

  def block(position, pixels, blocks, sub_blocks):
    introducer = byte(position)
    is_image = tf.equal(introducer, 0x2C)
    chain = tf.where(is_image, position + 11 + colour_table(byte(position + 9)), position + 2)
    frame = tf.where(is_image, u16(position + 5) * u16(position + 7), 0)
    position, sub_blocks = past_sub_blocks(chain, sub_blocks)
    return position, pixels + frame, blocks + 1, sub_blocks

  def is_block(position, _, blocks, sub_blocks):
    # an image or an extension; the trailer (0x3B), or anything else, ends the walk
    introducer = byte(position)
    return ((position < length) & (tf.equal(introducer, 0x2C) | tf.equal(introducer, 0x21)) &
            (blocks <= MAX_GIF_BLOCKS) & (sub_blocks <= MAX_GIF_SUB_BLOCKS))

  zero = tf.constant(0, tf.int64)
  _, pixels, blocks, sub_blocks = tf.while_loop(
      is_block, block, (13 + colour_table(byte(10)), zero, zero, zero))
  return tf.where((blocks > MAX_GIF_BLOCKS) | (sub_blocks > MAX_GIF_SUB_BLOCKS),
                  tf.constant(GIF_UNCHECKED, tf.int64), pixels)


def decoded_pixel_count(image_bytes: tf.Tensor) -> tf.Tensor:
  """Returns the pixels (int64) that decoding one JPEG/PNG/GIF/BMP allocates, from its headers.

  Any other content gives -1; a GIF of more than ``MAX_GIF_BLOCKS`` blocks or
  ``MAX_GIF_SUB_BLOCKS`` sub-blocks, ``GIF_UNCHECKED``.

  Reads only headers (for a GIF, every frame's image descriptor, within those
  bounds), so it is cheap on any input; a header too short
  to hold the size raises InvalidArgumentError, like the decoder would.
  """
  def int_pair(offset, dtype, little_endian):
    pair = tf.io.decode_raw(tf.strings.substr(image_bytes, offset, 2 * dtype.size), dtype,
                            little_endian)
    return tf.abs(tf.cast(pair[0], tf.int64) *
                  tf.cast(pair[1], tf.int64))  # BMP heights may be negative

  def jpeg():
    shape = tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)
    return shape[0] * shape[1]

  def gif():
    frames = _gif_frame_pixels(image_bytes)
    return tf.where(
        tf.equal(frames, GIF_UNCHECKED), frames,
        tf.maximum(int_pair(6, tf.uint16, little_endian=True), frames))

  return tf.case([
      (is_jpeg(image_bytes), jpeg),
      (is_png(image_bytes), lambda: int_pair(16, tf.int32, little_endian=False)),
      (tf.reduce_any([_starts_with(image_bytes, gif) for gif in GIF_SIGNATURES]), gif),
      (_starts_with(image_bytes,
                    BMP_SIGNATURE), lambda: int_pair(18, tf.int32, little_endian=True)),
  ],
                 default=lambda: tf.constant(-1, tf.int64),
                 exclusive=False)
