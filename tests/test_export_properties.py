"""Property-based: serving_default answers any well-formed batch, whatever its elements hold.

Random bytes, empty strings, truncated images and headers announcing huge
images never make the signature raise; they get ``valid=False`` (and zeros),
and the real images in the same batch keep the answers they get alone.
"""

import dataclasses
import os

import image_bytes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mlc_tf.serving import export, signatures

HUGE_SIDE = 8000  # 8000 x 8000 = 64 M pixels, over export.MAX_IMAGE_PIXELS
assert HUGE_SIDE**2 > export.MAX_IMAGE_PIXELS


@dataclasses.dataclass(frozen=True)
class Element:
  data: bytes
  # "image": decodes; "invalid": must not; "truncated": a cut image; "any": no promise
  kind: str
  source: str = ""    # for "image"/"truncated": which image


@pytest.fixture(scope="module")
def served(tiny_trained, tiny_saved_model):
  """(serving_default, {name: encoded image}, {name: its answers when sent alone})."""
  root, _, _ = tiny_trained
  def pixels(i):
    return np.asarray(Image.open(os.path.join(root, "images", f"im{i}.jpg")).convert("RGB"))

  images = {"jpeg": open(os.path.join(root, "images", "im1.jpg"), "rb").read(),
            "png": image_bytes.encode(pixels(2), "PNG"),
            "gif": image_bytes.encode(pixels(3), "GIF"),
            "bmp": image_bytes.encode(pixels(4), "BMP")}
  signature = tf.saved_model.load(tiny_saved_model).signatures[signatures.SERVING]
  alone = {name: {k: v.numpy()[0] for k, v in signature(image_bytes=tf.constant([data])).items()}
           for name, data in images.items()}
  assert all(answer["valid"] for answer in alone.values())
  return signature, images, alone


IMAGE_NAMES = ("jpeg", "png", "gif", "bmp")
huge_side = st.integers(HUGE_SIDE, 65535)
huge_png_bmp_side = st.integers(HUGE_SIDE, 2**31 - 1)
tail = st.binary(max_size=64)


@st.composite
def elements(draw, images):
  kind = draw(st.sampled_from(["image", "truncated", "empty", "huge", "magic", "random"]))
  if kind in ("image", "truncated"):
    name = draw(st.sampled_from(IMAGE_NAMES))
    data = images[name]
    if kind == "truncated":
      data = data[:draw(st.integers(0, len(data) - 1))]
    return Element(data, kind, name)
  if kind == "empty":
    return Element(b"", "invalid")
  if kind == "huge":
    header = draw(st.sampled_from(["png", "gif", "bmp", "jpeg"]))
    if header == "jpeg":
      return Element(image_bytes.jpeg_with_size(images["jpeg"], draw(huge_side), draw(huge_side)),
                     "invalid")
    if header == "gif":
      return Element(image_bytes.gif_header(draw(huge_side), draw(huge_side), draw(tail)),
                     "invalid")
    width, height = draw(huge_png_bmp_side), draw(huge_png_bmp_side)
    if header == "png":
      return Element(image_bytes.png_header(width, height, draw(tail)), "invalid")
    return Element(
        image_bytes.bmp_header(width, height * draw(st.sampled_from([1, -1])), draw(tail)),
        "invalid")
  if kind == "magic":  # a known format's first bytes, then anything
    magic = draw(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM"]))
    return Element(magic + draw(st.binary(max_size=256)), "any")
  return Element(draw(st.binary(max_size=512)), "any")


def check_row(row, element, alone):
  if not row["valid"]:
    assert not row["probabilities"].any() and not row["decisions"].any() and not any(row["labels"])
  if element.kind == "image":
    assert row["valid"]
    np.testing.assert_allclose(row["probabilities"], alone[element.source]["probabilities"],
                               atol=1e-6)
    np.testing.assert_array_equal(row["decisions"], alone[element.source]["decisions"])
    np.testing.assert_array_equal(row["labels"], alone[element.source]["labels"])
  elif element.kind == "invalid":
    assert not row["valid"]
  # only a cut the decoder never needed (a trailer) may pass
  elif element.kind == "truncated" and row["valid"]:
    np.testing.assert_allclose(row["probabilities"], alone[element.source]["probabilities"],
                               atol=1e-6)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_serving_default_answers_any_batch(served, data):
  signature, images, alone = served
  batch = data.draw(st.lists(elements(images), max_size=8), label="batch")
  out = {
      k: v.numpy()
      for k, v in signature(image_bytes=tf.constant([e.data for e in batch], tf.string)).items()
  }
  assert out["probabilities"].shape == out["decisions"].shape == out["labels"].shape == (len(batch),
                                                                                         3)
  assert out["valid"].shape == (len(batch),)
  for i, element in enumerate(batch):
    check_row({k: v[i] for k, v in out.items()}, element, alone)
