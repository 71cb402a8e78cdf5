"""The corpus layout on disk -> a tidy label frame, plus an audit of what was odd.

Layout (the Flickr study's own format)::

    <root>/images/im<ID>.jpg          one image per id
    <root>/annotations/<label>.txt    one image id per line: the images with <label>

The label frame is a ``pandas.DataFrame`` indexed by integer image id (name
``image_id``), one ``uint8`` 0/1 column per label (sorted by name), and a
``path`` column with the image file. Every image in ``images/`` is a sample,
also when no annotation lists it (it then has no label).
"""

from __future__ import annotations

import dataclasses
import os
import re

import pandas as pd
import tensorflow as tf

IMAGE_NAME = re.compile(r"^im(\d+)\.(jpe?g|png|gif|bmp)$", re.IGNORECASE)
PATH_COLUMN = "path"


class CorpusError(ValueError):
  """The corpus on disk cannot be used; the message names the file (and line)."""


@dataclasses.dataclass
class CorpusAudit:
  """What loading a corpus found odd: counted, named, never silently dropped."""

  num_images: int = 0
  # Annotation ids that have no image file: (label, line number, id).
  missing_images: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
  # Same id listed twice in one annotation file: (label, line number, id).
  duplicate_ids: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
  # Files in images/ that do not follow im<ID>.<ext>.
  unrecognised_files: list[str] = dataclasses.field(default_factory=list)
  # Labels whose annotation file lists no id.
  empty_labels: list[str] = dataclasses.field(default_factory=list)

  def warnings(self) -> list[str]:
    """One human-readable line per kind of problem found."""
    lines = []
    if self.missing_images:
      examples = ", ".join(f"{label}.txt:{line} id {i}" for label, line, i in self.missing_images[:5])
      lines.append(f"{len(self.missing_images)} annotation id(s) have no image and were ignored ({examples})")
    if self.duplicate_ids:
      examples = ", ".join(f"{label}.txt:{line} id {i}" for label, line, i in self.duplicate_ids[:5])
      lines.append(f"{len(self.duplicate_ids)} duplicate id(s) in annotation files ({examples})")
    if self.unrecognised_files:
      lines.append(f"{len(self.unrecognised_files)} file(s) in images/ not named im<ID>.<ext> were ignored "
                   f"({', '.join(self.unrecognised_files[:5])})")
    if self.empty_labels:
      lines.append(f"label(s) with no positive image: {', '.join(self.empty_labels)}")
    return lines

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _parse_annotation(path: str, label: str) -> list[tuple[int, int]]:
  """(line number, id) pairs; blank lines, CRLF and spaces tolerated, garbage is an error."""
  with tf.io.gfile.GFile(path, "r") as f:
    text = f.read()
  pairs = []
  for number, raw in enumerate(text.splitlines(), start=1):
    token = raw.strip()
    if not token:
      continue
    if not token.isdigit():
      raise CorpusError(f"{path}:{number}: expected an integer image id, found {token!r}")
    pairs.append((number, int(token)))
  return pairs


def load_corpus(root: str, labels: list[str] | None = None) -> tuple[pd.DataFrame, CorpusAudit]:
  """Reads ``root`` (images/ + annotations/) into a label frame and an audit.

  Args:
    root: corpus directory; any path ``tf.io.gfile`` understands.
    labels: label names to keep, in any order. ``None`` takes every
      annotation file. A requested label without an annotation file is an error.

  Returns:
    (frame, audit): see the module docstring for the frame's columns.
  """
  images_dir = os.path.join(root, "images")
  annotations_dir = os.path.join(root, "annotations")
  if not tf.io.gfile.isdir(root):
    raise CorpusError(f"corpus directory {root} does not exist")
  for needed in (images_dir, annotations_dir):
    if not tf.io.gfile.isdir(needed):
      raise CorpusError(f"{root} is not a corpus: it has no {os.path.basename(needed)}/ directory "
                        "(expected images/im<ID>.jpg and annotations/<label>.txt)")

  audit = CorpusAudit()
  paths: dict[int, str] = {}
  for name in sorted(tf.io.gfile.listdir(images_dir)):
    match = IMAGE_NAME.match(name)
    if not match:
      audit.unrecognised_files.append(name)
      continue
    image_id = int(match.group(1))
    if image_id in paths:
      raise CorpusError(f"{images_dir}: two image files for id {image_id}: "
                        f"{os.path.basename(paths[image_id])} and {name}")
    paths[image_id] = os.path.join(images_dir, name)
  audit.num_images = len(paths)
  if not paths:
    raise CorpusError(f"{images_dir} holds no image named im<ID>.jpg")

  available = sorted(name[:-4] for name in tf.io.gfile.listdir(annotations_dir) if name.endswith(".txt"))
  if labels is None:
    labels = available
  missing = sorted(set(labels) - set(available))
  if missing:
    raise CorpusError(f"{annotations_dir} has no annotation file for label(s) {missing}")
  labels = sorted(labels)
  if not labels:
    raise CorpusError(f"{annotations_dir} holds no <label>.txt annotation file")

  ids = sorted(paths)
  frame = pd.DataFrame(0, index=pd.Index(ids, name="image_id"), columns=labels, dtype="uint8")
  for label in labels:
    pairs = _parse_annotation(os.path.join(annotations_dir, f"{label}.txt"), label)
    seen = set()
    for line, image_id in pairs:
      if image_id in seen:
        audit.duplicate_ids.append((label, line, image_id))
        continue
      seen.add(image_id)
      if image_id not in paths:
        audit.missing_images.append((label, line, image_id))
        continue
      frame.at[image_id, label] = 1
    if not (seen & paths.keys()):
      audit.empty_labels.append(label)
  frame[PATH_COLUMN] = [paths[i] for i in ids]
  return frame, audit


def label_columns(frame: pd.DataFrame) -> list[str]:
  """The label names of a label frame, in column order."""
  return [c for c in frame.columns if c != PATH_COLUMN]


def write_corpus(root: str, frame: pd.DataFrame) -> None:
  """Writes the annotation files of a label frame under ``root``/annotations.

  Images are expected to be in place already (their writer knows their format).
  """
  annotations_dir = os.path.join(root, "annotations")
  tf.io.gfile.makedirs(annotations_dir)
  for label in label_columns(frame):
    ids = frame.index[frame[label] == 1]
    with tf.io.gfile.GFile(os.path.join(annotations_dir, f"{label}.txt"), "w") as f:
      f.write("".join(f"{i}\n" for i in ids))
