"""Encoded test images for the serving tests: every accepted format, and headers that lie about
their size."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(pixels: np.ndarray, fmt: str, **kwargs) -> bytes:
  """uint8 pixels [H, W, 3] (or [H, W]) -> bytes in PIL format ``fmt`` (JPEG, PNG, GIF, BMP)."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, fmt, **kwargs)
  return buffer.getvalue()


def animated_gif(frames: list[np.ndarray]) -> bytes:
  """A GIF with one frame per uint8 [H, W, 3] array; decoders that take the first frame see
  ``frames[0]``."""
  buffer = io.BytesIO()
  first, *rest = [Image.fromarray(frame) for frame in frames]
  first.save(buffer, "GIF", save_all=True, append_images=rest, duration=100, loop=0)
  return buffer.getvalue()


def gif_frames(data: bytes) -> list[np.ndarray]:
  """The RGB frames of a GIF as PIL decodes them (the palette applied)."""
  image = Image.open(io.BytesIO(data))
  frames = []
  for index in range(image.n_frames):
    image.seek(index)
    frames.append(np.asarray(image.convert("RGB")))
  return frames


def png16(pixels: np.ndarray) -> bytes:
  """A 16-bit grayscale PNG of uint16 pixels [H, W]."""
  buffer = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint16)).save(buffer, "PNG")
  return buffer.getvalue()


def png_header(width: int, height: int, tail: bytes = b"") -> bytes:
  """A PNG signature and a well-formed IHDR announcing ``width`` x ``height`` RGB, then ``tail``."""
  body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I",
                                                                           zlib.crc32(body)) + tail


def gif_header(width: int, height: int, tail: bytes = b"") -> bytes:
  """A GIF89a logical screen descriptor announcing ``width`` x ``height``, then ``tail``."""
  return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + tail


def bmp_header(width: int, height: int, tail: bytes = b"") -> bytes:
  """A 24-bit BMP file + info header announcing ``width`` x ``height`` (negative: top-down), then
  ``tail``."""
  info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
  return b"BM" + struct.pack("<IHHI", 54 + len(tail), 0, 0, 54) + info + tail


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
  """``jpeg`` (baseline) with its SOF0 frame header rewritten to announce ``width`` x ``height``."""
  sof = jpeg.index(b"\xff\xc0")
  return jpeg[:sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


def gif_bomb(frame_side: int, screen_side: int = 1) -> bytes:
  """A valid GIF whose screen says ``screen_side``² and whose one frame is ``frame_side``² (zeros: a
  few KB)."""
  frame = encode(np.zeros((frame_side, frame_side), np.uint8), "GIF")
  return frame[:6] + struct.pack("<HH", screen_side, screen_side) + frame[10:]


def gif_with_second_frame(first: np.ndarray, second_side: int) -> bytes:
  """A two-frame GIF: ``first`` (uint8 [H, W, 3]) on a screen of its size, then a ``second_side``²
  frame."""
  second = encode(np.zeros((second_side, second_side), np.uint8), "GIF")
  flags = second[10]
  # its blocks, less the trailer
  blocks = second[13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 13):-1]
  return encode(first, "GIF")[:-1] + blocks + b";"


def gif_of_blocks(comment_sub_blocks: int = 0, frames: int = 1) -> bytes:
  """A valid GIF of ``frames`` 1x1 frames after a comment of ``comment_sub_blocks`` one-byte
  sub-blocks: many blocks in few bytes, a costly walk for a frame-size check."""
  one = encode(np.zeros((1, 1), np.uint8), "GIF")
  flags = one[10]
  screen = one[:13 + (3 << ((flags & 7) + 1)) if flags & 0x80 else 13]
  comment = b"\x21\xfe" + b"\x01A" * comment_sub_blocks + b"\x00"
  return screen + comment + one[len(screen):-1] * frames + b";"


def palette_bmp(pixels: np.ndarray) -> bytes:
  """An 8-bit palette BMP of uint8 pixels [H, W, 3] (PIL quantizes them)."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).quantize(16).save(buffer, "BMP")
  return buffer.getvalue()
