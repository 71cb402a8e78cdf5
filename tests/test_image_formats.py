"""The one module that knows the image formats: signatures, extensions, header sizes."""

import image_bytes
import numpy as np
import pytest
import tensorflow as tf

from mlc_tf.data import corpus, image_formats, pipeline

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


@pytest.mark.parametrize("blocks", [
    {"comment_sub_blocks": image_formats.MAX_GIF_SUB_BLOCKS + 1},
    {"frames": image_formats.MAX_GIF_BLOCKS + 1},
])
def test_a_gif_of_more_blocks_than_its_check_walks_is_refused_with_the_reason(blocks):
  hostile = image_bytes.gif_of_blocks(**blocks)  # ~140 KB; at 10 MB, minutes of checking
  assert len(hostile) < 200_000 and tf.io.decode_image(hostile, expand_animations=False).shape == (
      1, 1, 3)  # TensorFlow decodes it
  count = tf.function(image_formats.decoded_pixel_count)  # as the pipeline and the export run it
  assert int(count(tf.constant(hostile))) == image_formats.GIF_UNCHECKED
  assert corpus.undecodable_reason(hostile) == image_formats.GIF_TOO_MANY_BLOCKS
  with pytest.raises(tf.errors.InvalidArgumentError, match="too many to check its frame sizes"):
    tf.function(pipeline.decode_and_resize)(tf.constant(hostile), 8)
  fewer = {key: value - 2 for key, value in blocks.items()}
  assert corpus.undecodable_reason(image_bytes.gif_of_blocks(**fewer)) is None  # within the bound


def test_a_palette_bmp_is_told_from_a_24_bit_one():
  assert bool(image_formats.is_palette_bmp(tf.constant(image_bytes.palette_bmp(PIXELS))))
  assert not bool(image_formats.is_palette_bmp(tf.constant(image_bytes.encode(PIXELS, "BMP"))))
  assert not bool(image_formats.is_palette_bmp(tf.constant(image_bytes.encode(PIXELS, "PNG"))))
