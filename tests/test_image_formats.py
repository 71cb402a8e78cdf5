"""The one module that knows the image formats: signatures, extensions, header sizes."""

import image_bytes
import numpy as np
import pytest
import tensorflow as tf

from mlc_tf.data import image_formats

PIXELS = np.full((6, 10, 3), 128, np.uint8)


@pytest.mark.parametrize("fmt, kind", [("JPEG", "jpeg"), ("PNG", "png"), ("GIF", "gif"),
                                       ("BMP", "bmp")])
def test_format_and_header_size_come_from_the_content(fmt, kind):
  data = image_bytes.encode(PIXELS, fmt)
  assert image_formats.format_of(data) == kind
  assert bool(image_formats.is_png(tf.constant(data))) == (kind == "png")
  assert int(image_formats.decoded_pixel_count(tf.constant(data))) == 60


def test_other_content_has_no_format():
  assert image_formats.format_of(b"hello, world") is None
  assert int(image_formats.decoded_pixel_count(tf.constant(b"hello, world"))) == -1


def test_corpus_image_names_use_the_same_extensions():
  for extension in image_formats.EXTENSIONS:
    assert image_formats.CORPUS_IMAGE_NAME.match(f"im12{extension.upper()}").group(1) == "12"
  assert image_formats.CORPUS_IMAGE_NAME.match("im12.tif") is None
  assert image_formats.CORPUS_IMAGE_NAME.match("im12xjpg") is None


def test_a_gif_counts_the_pixels_of_every_frame_not_its_screen():
  assert int(image_formats.decoded_pixel_count(tf.constant(image_bytes.gif_bomb(300)))) == 300 * 300
  two_frames = image_bytes.gif_with_second_frame(PIXELS, 50)
  assert int(image_formats.decoded_pixel_count(tf.constant(two_frames))) == 60 + 50 * 50


def test_a_palette_bmp_is_told_from_a_24_bit_one():
  assert bool(image_formats.is_palette_bmp(tf.constant(image_bytes.palette_bmp(PIXELS))))
  assert not bool(image_formats.is_palette_bmp(tf.constant(image_bytes.encode(PIXELS, "BMP"))))
  assert not bool(image_formats.is_palette_bmp(tf.constant(image_bytes.encode(PIXELS, "PNG"))))
