"""Issue 7's data table, row by row, on a generated messy corpus: every bad input is skipped and
named, decoded correctly, or a clear error before training."""

import io
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf
from helpers import make_tiny_corpus
from PIL import Image

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline

COLOUR = (200, 30, 60)
SIZE = 8  # the configured image size of these tests


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **options)
  return buffer.getvalue()


def _solid(mode="RGB", size=(20, 12)) -> Image.Image:
  return Image.new("RGB", size, COLOUR).convert(mode)


def _halves(size: int) -> Image.Image:
  """Left half COLOUR, right half blue: shows that a resize kept the picture, not just a colour."""
  pixels = np.zeros((size, size, 3), np.uint8)
  pixels[:, :size // 2] = COLOUR
  pixels[:, size // 2:] = (0, 0, 255)
  return Image.fromarray(pixels)


# Content that decode_and_resize must turn into the right picture, whatever the file is called.
ODD_BUT_GOOD = {
    30: ("im30.jpg", lambda: _encode(_solid(), "PNG")),  # PNG under a .jpg name
    31: ("im31.jpg", lambda: _encode(_solid(), "GIF")),  # GIF under a .jpg name
    32: ("im32.jpg", lambda: _encode(_solid(), "BMP")),  # 24-bit BMP under a .jpg name
    33: ("im33.jpg", lambda: _encode(_solid("CMYK"), "JPEG", quality=98)),
    # 16-bit RGB PNG
    34: ("im34.png", lambda: tf.io.encode_png(
        tf.fill((12, 20, 3), tf.constant(0, tf.uint16)) + tf.constant([c * 257 for c in COLOUR], tf.
                                                                      uint16)).numpy()),
    # alpha is dropped
    35: ("im35.png", lambda: _encode(Image.new("RGBA", (20, 12), COLOUR + (90,)), "PNG")),
    36: ("im36.jpg", lambda: _encode(_solid(size=(1, 1)), "JPEG", quality=98, subsampling=0)),
    37: ("im37.jpg", lambda: _encode(_halves(6000), "JPEG", quality=90, subsampling=0)),
}
# Files that must be skipped, counted and named, with the reason the audit gives.
BAD = {
    20: ("im20.jpg", lambda: b"", "empty file"),
    21: ("im21.jpg", lambda: _encode(_halves(64), "JPEG")[:300], "Invalid JPEG data"),
    22: ("im22.jpg", lambda: b"just some text, not a photo\n", "not a JPEG, PNG, GIF or BMP"),
    23: ("im23.jpg", lambda: _encode(_solid("P"), "BMP"), "palette BMP"),
}


@pytest.fixture(scope="module")
def messy_corpus(tmp_path_factory):
  """A small clean corpus plus one file per row of the issue's table."""
  root = str(tmp_path_factory.mktemp("messy"))
  truth = make_tiny_corpus(root, labels=("cat", "dog"), num_images=10, size=16)
  images = os.path.join(root, "images")
  for name, make in ODD_BUT_GOOD.values():
    with open(os.path.join(images, name), "wb") as f:
      f.write(make())
  for name, make, _ in BAD.values():
    with open(os.path.join(images, name), "wb") as f:
      f.write(make())
  with open(os.path.join(images, "notes.txt"), "w") as f:
    f.write("not an image name\n")
  annotations = os.path.join(root, "annotations")
  cats = sorted(i for i, labels in truth.items() if "cat" in labels)
  # CRLF, blanks, spaces, duplicates
  with open(os.path.join(annotations, "cat.txt"), "w", newline="") as f:
    f.write("".join(f"{i}  \r\n" for i in cats) + "\r\n   \r\n" + f"{cats[0]}\r\n" +
            "999\r\n20\r\n30\r\n37\t\r\n")
  open(os.path.join(annotations, "empty.txt"), "w").close()
  with open(os.path.join(annotations, "unicorn.txt"), "w") as f:
    f.write("1\n")
  return root, truth


@pytest.fixture(scope="module")
def loaded(messy_corpus):
  root, _ = messy_corpus
  return corpus_lib.load_corpus(root, labels=["cat", "dog", "empty"])


def test_bad_files_are_skipped_counted_and_named(loaded):
  frame, audit = loaded
  named = {os.path.basename(path): reason for path, reason in audit.undecodable_images}
  assert set(named) == {name for name, _, _ in BAD.values()}
  for name, _, reason in BAD.values():
    assert reason in named[name], (name, named[name])
  assert not set(BAD) & set(frame.index)
  assert audit.num_images == 10 + len(ODD_BUT_GOOD) + len(BAD) and audit.num_samples == len(frame)
  assert audit.unrecognised_files == ["notes.txt"]
  text = "\n".join(audit.warnings())
  assert f"{len(BAD)} image(s) cannot be decoded and were skipped" in text and "im21.jpg" in text
  table = audit.summary_table()
  assert f"| undecodable images (skipped) | {len(BAD)} | im20.jpg, im21.jpg, im22.jpg, … |" in table


def test_odd_formats_decode_to_the_configured_size(loaded):
  frame, audit = loaded
  assert set(ODD_BUT_GOOD) <= set(frame.index)
  assert (audit.image_formats["png"] == 3 and audit.image_formats["gif"] == 1
          and audit.image_formats["bmp"] == 2)
  odd = frame.loc[sorted(ODD_BUT_GOOD)]
  ds = pipeline.make_dataset(odd["path"].to_numpy(), odd[["cat", "dog", "empty"]].to_numpy(),
                             image_size=SIZE, batch_size=len(odd), training=False, cache=False)
  images = dict(zip(sorted(ODD_BUT_GOOD), next(iter(ds))[0].numpy()))
  for image_id, image in images.items():
    assert image.shape == (SIZE, SIZE, 3), image_id
    left = image[:, :SIZE // 2 - 1] if image_id == 37 else image
    np.testing.assert_allclose(left, np.broadcast_to(COLOUR, left.shape), atol=4,
                               err_msg=ODD_BUT_GOOD[image_id][0])
  np.testing.assert_allclose(images[37][:, SIZE // 2 + 1:],
                             np.broadcast_to((0, 0, 255), (SIZE, SIZE // 2 - 1, 3)),
                             atol=4)  # 6000x6000 -> SIZE x SIZE keeps the picture's two halves


def test_annotation_rows_of_the_table(loaded):
  frame, audit = loaded
  # An id without image is counted and named; CRLF, blank lines, tabs and trailing spaces are
  # tolerated.
  assert [(label, i) for label, _, i in audit.missing_images] == [("cat", 999)]
  assert "cat.txt:" in "\n".join(audit.warnings()) and "id 999" in "\n".join(audit.warnings())
  assert len(audit.duplicate_ids) == 1 and audit.duplicate_ids[0][0] == "cat"
  assert frame.at[30, "cat"] == 1 and frame.at[37, "cat"] == 1  # tab + CRLF after the id
  # An id whose image was skipped labels nothing, and is reported as a skipped image rather than
  # lost.
  assert 20 not in frame.index
  # Images in no annotation file are samples with no label.
  assert frame.loc[[31, 32, 33], ["cat", "dog", "empty"]].to_numpy().sum() == 0
  # An empty annotation file: the label is kept, with 0 positives, and said so.
  assert audit.empty_labels == ["empty"] and frame["empty"].sum() == 0
  assert "no positive image, kept with 0 positives: empty" in "\n".join(audit.warnings())
  # A label file for a label the config does not ask for is ignored and listed.
  assert "unicorn" not in frame.columns and audit.ignored_label_files == ["unicorn.txt"]


def test_strict_turns_every_skip_into_an_error(messy_corpus):
  root, _ = messy_corpus
  with pytest.raises(corpus_lib.CorpusError, match=r"im20\.jpg: empty file.*\[strict\]") as caught:
    corpus_lib.load_corpus(root, labels=["cat", "dog"], strict=True)
  assert len(caught.value.audit.undecodable_images) == len(BAD)  # the audit survives for the report


def test_clean_corpus_passes_strict(tiny_corpus):
  root, truth = tiny_corpus
  frame, audit = corpus_lib.load_corpus(root, strict=True)
  assert len(frame) == len(truth) and audit.warnings() == [] and audit.image_formats == {
      "jpeg": len(truth)
  }


@pytest.mark.parametrize("garbage,line", [("12a", 3), ("1 2", 3), ("²", 3), ("-4", 3)])
def test_garbage_in_annotation_names_file_and_line(tiny_corpus, garbage, line):
  root, _ = tiny_corpus
  with open(os.path.join(root, "annotations", "dog.txt"), "w", newline="") as f:
    f.write(f"\ufeff1\r\n\r\n{garbage}  \r\n2\r\n")  # a BOM and blank lines are fine; line 3 is not
  with pytest.raises(corpus_lib.CorpusError,
                     match=rf"dog\.txt:{line}: expected one integer image id"):
    corpus_lib.load_corpus(root)


def _unreadable(path: str, how: str) -> None:
  if how == "directory":
    os.remove(path)
    os.mkdir(path)
  elif how == "dangling_link":
    os.remove(path)
    os.symlink(path + ".gone", path)
  else:
    os.chmod(path, 0)


UNREADABLE_WAYS = [
    "directory", "dangling_link",
    pytest.param(
        "permissions", marks=pytest.mark.skipif(
            os.geteuid() == 0,
            reason="root reads a chmod-000 file; 'directory' and 'dangling_link' "
            "take the same unreadable-file path as root"))
]


@pytest.mark.parametrize("how", UNREADABLE_WAYS)
def test_unreadable_image_is_an_error_before_training(tiny_corpus, how):
  root, _ = tiny_corpus
  _unreadable(os.path.join(root, "images", "im3.jpg"), how)
  with pytest.raises(corpus_lib.CorpusError,
                     match=r"1 file\(s\) cannot be read \(.*im3\.jpg.*permissions") as caught:
    corpus_lib.load_corpus(root)
  assert [os.path.basename(p) for p, _ in caught.value.audit.unreadable_files] == ["im3.jpg"]


@pytest.mark.parametrize("how", UNREADABLE_WAYS)
def test_unreadable_annotation_file_is_an_error(tiny_corpus, how):
  root, _ = tiny_corpus
  _unreadable(os.path.join(root, "annotations", "cat.txt"), how)
  with pytest.raises(corpus_lib.CorpusError, match=r"cat\.txt: cannot read the annotation file"):
    corpus_lib.load_corpus(root)


def test_validate_data_cli_reports_and_fails_under_strict(messy_corpus, tmp_path):
  """One run (a process start costs seconds): the table, the JSON audit, and --strict's exit
  status."""
  root, _ = messy_corpus
  output = tmp_path / "audit.json"
  proc = subprocess.run([
      sys.executable, "-m", "mlc_tf.cli.validate_data", f"--data_dir={root}", "--labels=cat,dog",
      "--strict", f"--output={output}"
  ], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert "[strict]" in proc.stderr and "im22.jpg" in proc.stderr
  assert f"| undecodable images (skipped) | {len(BAD)} |" in proc.stdout
  audit = json.load(open(output))
  assert {os.path.basename(path) for path, _ in audit["undecodable_images"]
         } == {n for n, _, _ in BAD.values()}
  assert audit["num_samples"] == 10 + len(ODD_BUT_GOOD)
  assert audit["ignored_label_files"] == ["empty.txt", "unicorn.txt"]


def test_a_fifo_among_the_images_is_skipped_with_its_reason_not_waited_on(tiny_corpus):
  """Reading a named pipe blocks until something writes to it: load_corpus (so validate-data,
  training and the review app) would hang."""
  root, _ = tiny_corpus
  os.remove(os.path.join(root, "images", "im3.jpg"))
  fifo = os.path.join(root, "images", "im3.jpg")
  os.mkfifo(fifo)
  waited = []

  def unblock():  # a reader that waits on the pipe gets its end of file: the test then fails
    try:
      os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
      waited.append(True)
    except OSError:  # no reader: none waits
      pass

  watchdog = threading.Timer(60, unblock)
  watchdog.start()
  try:
    frame, audit = corpus_lib.load_corpus(root)
    assert 3 not in frame.index
    assert [(os.path.basename(path), reason) for path, reason in audit.undecodable_images] == [
        ("im3.jpg", "not a regular file: a named pipe (FIFO)")]
    with pytest.raises(corpus_lib.CorpusError, match=r"im3\.jpg: not a regular file"):
      corpus_lib.load_corpus(root, strict=True)
  finally:
    watchdog.cancel()
  assert not waited
