"""The corpus layout on disk -> a tidy label frame, plus an audit of what was odd.

Layout (the Flickr study's format, see ``mlc_tf/__init__.py``)::

    <root>/images/im<ID>.jpg          one image per id
    <root>/annotations/<label>.txt    one image id per line: the images with <label>

The label frame is a ``pandas.DataFrame`` indexed by integer image id (name
``image_id``), one ``uint8`` 0/1 column per label (sorted by name), and a
``path`` column with the image file. Every image in ``images/`` is a sample,
also when no annotation lists it (it then has no label).

Loading checks the corpus in two stages and reports both in one ``CorpusAudit``:

1. layout: file names and annotation files. A missing ``images/`` or
   ``annotations/``, an unreadable annotation file, or a line that is not an
   integer id is an error naming the file (and line); blank lines, CRLF,
   surrounding spaces and duplicate ids are tolerated.
2. content (``audit_frame``, which any source of label frames can call): every
   image is read and decoded once, up front, by a parallel tf.data scan with the
   same ``pipeline.decode_and_resize`` that training and serving use. An image it
   cannot decode is dropped from the frame and named in the audit, so no epoch
   ever meets it. A file that cannot be read at all (permissions, dangling
   link) is an error: that is the machine's problem, not the data's.

With ``strict=True`` every skip or oddity the audit warns about is an error too.
A label whose annotation file lists no usable image is kept with 0 positives
and warned about; annotation files of labels not asked for are ignored and
listed in the audit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf import markdown
from mlc_tf.data import image_formats, pipeline

PATH_COLUMN = "path"
# Label names a label frame cannot hold: its other columns'.
RESERVED_LABELS = (PATH_COLUMN,)
# An annotation file: <label>.txt, the extension in any case (as an image's).
ANNOTATION_EXTENSION = ".txt"
# TensorFlow error messages carry the op's internals around the human part.
_TF_MESSAGE_NOISE = re.compile(r"\{\{[^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$", re.DOTALL)
# A graph's error: where the failing op was defined, then the message (an assertion's in brackets).
_GRAPH_TRACE = re.compile(
    r"^Graph execution error:\s*(?:Detected at node[^\n]*\n(?:\s*File [^\n]*\n)*)?\s*")
_ASSERTION = re.compile(r"^assertion failed: \[(.*?)\] \[Condition")
_EXAMPLES = 5


class CorpusError(ValueError):
  """The corpus cannot be used; the message names the file (and line).

  ``audit`` holds what the scan found when it got that far (None otherwise),
  so a caller can still write the audit it failed on.
  """

  def __init__(self, message: str, audit: CorpusAudit | None = None):
    super().__init__(message)
    self.audit = audit


@dataclasses.dataclass
class CorpusAudit:
  """What loading a corpus found odd: counted, named, never silently dropped."""

  source: str = ""
  num_images: int = 0   # image files found
  num_samples: int = 0  # images kept as samples after every check
  # Content format (from the file's leading bytes) -> count; an extension may lie.
  image_formats: dict[str, int] = dataclasses.field(default_factory=dict)
  # Skipped images that cannot be decoded: (path, reason).
  undecodable_images: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  # Files that cannot be read at all: (path, reason). Always an error.
  unreadable_files: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  # Annotation ids that have no image file: (label, line number, id).
  missing_images: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
  # Same id listed twice in one annotation file: (label, line number, id).
  duplicate_ids: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
  # Files in images/ that do not follow im<ID>.<ext>.
  unrecognised_files: list[str] = dataclasses.field(default_factory=list)
  # Labels with no positive sample left: kept, with 0 positives.
  empty_labels: list[str] = dataclasses.field(default_factory=list)
  # Annotation files of labels that were not asked for (config.data.labels): ignored by request.
  ignored_label_files: list[str] = dataclasses.field(default_factory=list)

  def warnings(self) -> list[str]:
    """Returns a human-readable line per kind of skip or oddity; ``strict`` makes each an error."""
    lines = []
    if self.undecodable_images:
      examples = ", ".join(f"{os.path.basename(path)}: {reason}" for path, reason in
                           self.undecodable_images[:_EXAMPLES])
      lines.append(
          f"{len(self.undecodable_images)} image(s) cannot be decoded and were skipped ({examples})"
      )
    if self.missing_images:
      examples = ", ".join(
          f"{label}.txt:{line} id {i}" for label, line, i in self.missing_images[:_EXAMPLES])
      lines.append(
          f"{len(self.missing_images)} annotation id(s) have no image and were ignored ({examples})"
      )
    if self.duplicate_ids:
      examples = ", ".join(
          f"{label}.txt:{line} id {i}" for label, line, i in self.duplicate_ids[:_EXAMPLES])
      lines.append(f"{len(self.duplicate_ids)} duplicate id(s) in annotation files ({examples})")
    if self.unrecognised_files:
      lines.append(
          f"{len(self.unrecognised_files)} file(s) in images/ not named im<ID>.<ext> were ignored "
          f"({', '.join(self.unrecognised_files[:_EXAMPLES])})")
    if self.empty_labels:
      lines.append(
          f"label(s) with no positive image, kept with 0 positives: {', '.join(self.empty_labels)}")
    return lines

  def errors(self, strict: bool = False) -> list[str]:
    """Returns the findings that stop a run.

    Those are unreadable files always, and every warning when ``strict``.
    """
    lines = []
    if self.unreadable_files:
      examples = ", ".join(
          f"{path}: {reason}" for path, reason in self.unreadable_files[:_EXAMPLES])
      lines.append(
          f"{len(self.unreadable_files)} file(s) cannot be read ({examples}); check their "
          "permissions")
    if strict:
      lines += [f"{line} [strict]" for line in self.warnings()]
    return lines

  def summary_table(self) -> str:
    """Returns a markdown table: one row per check, its count and the first files it names."""
    def names(items, pick):
      return ", ".join(pick(item) for item in items[:3]) + (", …" if len(items) > 3 else "")
    rows = [
        ("image files", self.num_images, ""),
        ("samples kept", self.num_samples, ""),
        ("content formats", sum(self.image_formats.values()),
         ", ".join(f"{kind} {count}" for kind, count in sorted(self.image_formats.items()))),
        ("undecodable images (skipped)", len(self.undecodable_images),
         names(self.undecodable_images, lambda item: os.path.basename(item[0]))),
        ("unreadable files (error)", len(self.unreadable_files),
         names(self.unreadable_files, lambda item: os.path.basename(item[0]))),
        ("annotation ids without image (ignored)", len(self.missing_images),
         names(self.missing_images, lambda item: f"{item[0]}.txt:{item[1]}")),
        ("duplicate annotation ids (ignored)", len(self.duplicate_ids),
         names(self.duplicate_ids, lambda item: f"{item[0]}.txt:{item[1]}")),
        ("unrecognised files in images/ (ignored)", len(self.unrecognised_files),
         names(self.unrecognised_files, str)),
        ("labels with no positive (kept)", len(self.empty_labels), names(self.empty_labels, str)),
        ("annotation files not asked for (ignored)", len(self.ignored_label_files),
         names(self.ignored_label_files, str)),
    ]
    return "\n".join(markdown.table(["check", "count", "files"], rows, align="lrl"))

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def write_json(self, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump(self.to_dict(), f, indent=2)


def _reason(error: Exception) -> str:
  """The human part of an OS or TensorFlow error message."""
  message = error.message if isinstance(error, tf.errors.OpError) else str(error)
  message = _TF_MESSAGE_NOISE.sub("", _GRAPH_TRACE.sub("", message)).strip()
  if not message:
    return type(error).__name__
  line = message.splitlines()[0]
  assertion = _ASSERTION.match(line)
  return assertion.group(1) if assertion else line


def check_image(path: str) -> tuple[str, str | None, str | None]:
  """Reads and decodes one image file the way training does, and says what is wrong with it.

  Returns:
    (content format or "", why it cannot be read or None, why it cannot be decoded or None). A
    path that is no regular file (a FIFO, which would block the read) cannot be decoded.
  """
  special = image_formats.not_a_regular_file(path)
  if special:
    return "", None, special
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = f.read()
  except (OSError, tf.errors.OpError) as error:
    return "", _reason(error), None
  return image_formats.format_of(data) or "", None, undecodable_reason(data)


# What a skip says when the model's decoder refused a file in which undecodable_reason finds nothing
# wrong.
REFUSED_BY_MODEL = "refused by the model"


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _decode_check(data: tf.Tensor) -> tf.Tensor:
  """``decode_and_resize`` as a graph: run eagerly, a GIF's block walk would be a Python loop."""
  return pipeline.decode_and_resize(data, 1)


def undecodable_reason(data: bytes) -> str | None:
  """Returns why ``decode_and_resize`` refuses an encoded image, or None.

  E.g. "empty file", "larger than the 40 MP limit"...
  """
  if not data:
    return "empty file"
  if image_formats.format_of(data) is None:
    return "not a JPEG, PNG, GIF or BMP image"
  try:
    _decode_check(tf.constant(data))
  except tf.errors.OpError as error:
    return _reason(error)
  return None


def _decodable_heads(paths: list[str], workers: int | None, progress: bool) -> dict[int, bytes]:
  """Decodes every file with tf.data, in parallel.

  Returns {index in ``paths``: first bytes} of those that decode.

  A file that fails to read or decode is an error of its element only:
  ``ignore_errors`` drops it and the scan goes on; the caller asks
  ``check_image`` why, for those few.
  """
  def decode(index, path):
    data = tf.io.read_file(path)
    # The pixels are of no interest, decoding them is the check; an output that needs them keeps the
    # decode in the graph (a control dependency alone gets optimised away).
    pixel_sum = tf.reduce_sum(pipeline.decode_and_resize(data, 1))
    return index, tf.strings.substr(data, 0, 8), pixel_sum

  ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string)).enumerate()
  ds = ds.map(decode, num_parallel_calls=workers or tf.data.AUTOTUNE, deterministic=True)
  ds = ds.ignore_errors().prefetch(tf.data.AUTOTUNE)
  bar = keras.utils.Progbar(len(paths), unit_name="image", interval=1.0) if progress else None
  heads = {}
  for index, head, _ in ds.as_numpy_iterator():
    heads[int(index)] = head
    if bar is not None:
      bar.update(int(index) + 1)
  if bar is not None and len(
      paths) - 1 not in heads:  # the last file failed: the bar has not finished
    bar.update(len(paths))
  return heads


def audit_frame(frame: pd.DataFrame,
                audit: CorpusAudit,
                *,
                strict: bool = False,
                workers: int | None = None,
                progress: bool = False) -> pd.DataFrame:
  """Checks a label frame's images and finishes its audit.

  Any source of label frames (a ``path`` column + 0/1 label columns) calls
  this after recording its own layout findings in ``audit``.

  Args:
    frame: the label frame; not modified.
    audit: filled in place: formats, undecodable and unreadable files, empty labels, counts.
    strict: every warning of the audit is an error.
    workers: parallel decodes; ``None``: tf.data's autotuning.
    progress: show a progress bar while decoding.

  Returns:
    The frame without the bad images.

  Raises:
    CorpusError: a file cannot be read, or ``strict`` and the audit has warnings;
      ``error.audit`` is ``audit``.
  """
  paths = frame[PATH_COLUMN].tolist()
  special = {row: image_formats.not_a_regular_file(path) for row, path in enumerate(paths)}
  special = {row: reason for row, reason in special.items() if reason}
  # a FIFO would block the scan: left out of it, and skipped with the reason below
  scanned = [row for row in range(len(paths)) if row not in special]
  heads = {scanned[index]: head for index, head in
           _decodable_heads([paths[row] for row in scanned], workers, progress).items()}
  formats: dict[str, int] = {}
  keep = []
  for row, path in enumerate(paths):
    if row in heads:
      kind, unreadable, undecodable = image_formats.format_of(heads[row]), None, None
    elif row in special:
      kind, unreadable, undecodable = "", None, special[row]
    else:
      kind, unreadable, undecodable = check_image(path)
    if kind:
      formats[kind] = formats.get(kind, 0) + 1
    if unreadable:
      audit.unreadable_files.append((path, unreadable))
    elif undecodable:
      audit.undecodable_images.append((path, undecodable))
    keep.append(not (unreadable or undecodable))
  audit.image_formats = dict(sorted(formats.items()))
  frame = frame[keep]
  audit.num_samples = len(frame)
  audit.empty_labels = [label for label in label_columns(frame) if not frame[label].any()]
  errors = audit.errors(strict)
  if errors:
    raise CorpusError(f"{audit.source or 'corpus'}: " + "; ".join(errors), audit)
  if frame.empty:
    raise CorpusError(f"{audit.source or 'corpus'}: no usable image left after the checks", audit)
  return frame


def _parse_annotation(path: str) -> list[tuple[int, int]]:
  """(line number, id) pairs; blank lines, CRLF, a BOM and spaces tolerated, garbage is an error."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      text = f.read().decode("utf-8-sig", errors="replace")
  except (OSError, tf.errors.OpError) as error:
    raise CorpusError(f"{path}: cannot read the annotation file: {_reason(error)}") from None
  pairs = []
  for number, raw in enumerate(text.splitlines(), start=1):
    token = raw.strip()
    if not token:
      continue
    if not (token.isascii() and token.isdigit()):
      raise CorpusError(f"{path}:{number}: expected one integer image id per line, found {token!r}")
    pairs.append((number, int(token)))
  return pairs


def listdir(path: str) -> list[str]:
  """Returns the sorted names in a directory.

  Raises a CorpusError naming it when it cannot be listed.
  """
  try:
    return sorted(tf.io.gfile.listdir(path))
  except (OSError, tf.errors.OpError) as error:
    raise CorpusError(f"{path}: cannot list the directory: {_reason(error)}") from None


def sample_images(source: str | None, count: int, seed: int = 0) -> list[bytes]:
  """Returns up to ``count`` decodable images of a corpus folder (its images/, else the folder
  itself), drawn at random with ``seed``, encoded as they are on disk; none when ``source`` is not
  a folder on this machine (None, a ``csv:`` or ``tfds:`` spec).

  What an export calibrates full-int8 ranges on and warms TF Serving up with: real photos of the
  corpus the model learnt. Files that ``decode_and_resize`` refuses are passed over.
  """
  source = (source or "").removeprefix("folder:")
  if not source or not tf.io.gfile.isdir(source):
    return []
  images_dir = os.path.join(source, "images")
  images_dir = images_dir if tf.io.gfile.isdir(images_dir) else source
  names = [name for name in listdir(images_dir) if name.lower().endswith(image_formats.EXTENSIONS)]
  photos = []
  for index in np.random.default_rng(seed).permutation(len(names)):
    with tf.io.gfile.GFile(os.path.join(images_dir, names[index]), "rb") as f:
      data = f.read()
    if undecodable_reason(data) is None:
      photos.append(data)
      if len(photos) == count:
        break
  return photos


def training_photos(workdir: str, count: int) -> list[bytes]:
  """Returns ``sample_images`` of the corpus a training workdir learnt from, which its
  ``data_audit.json`` names; none when that file is absent."""
  path = os.path.join(workdir, "data_audit.json")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return sample_images(json.load(f).get("source"), count)


def load_corpus(root: str,
                labels: list[str] | None = None,
                *,
                strict: bool = False,
                workers: int | None = None,
                progress: bool = False) -> tuple[pd.DataFrame, CorpusAudit]:
  """Reads ``root`` (images/ + annotations/) into a label frame and an audit.

  Args:
    root: corpus directory; any path ``tf.io.gfile`` understands.
    labels: label names to keep, in any order. ``None`` takes every
      annotation file. A requested label without an annotation file is an error.
    strict, workers, progress: see ``audit_frame``.

  Returns:
    (frame, audit): see the module docstring for the frame's columns.

  Raises:
    CorpusError: see the module docstring.
  """
  images_dir, annotations_dir = _corpus_dirs(root)
  audit = CorpusAudit(source=root)
  paths = _image_files(images_dir, audit)
  files = _annotated_labels(annotations_dir, labels, audit)
  ids = sorted(paths)
  frame = pd.DataFrame(0, index=pd.Index(ids, name="image_id"), columns=list(files),
                       dtype="uint8")
  for label, file_name in files.items():
    frame.loc[_annotated_ids(annotations_dir, label, file_name, paths, audit), label] = 1
  frame[PATH_COLUMN] = [paths[i] for i in ids]
  frame = audit_frame(frame, audit, strict=strict, workers=workers, progress=progress)
  return frame, audit


def _corpus_dirs(root: str) -> tuple[str, str]:
  """``root``'s images/ and annotations/ directories; an error unless both exist."""
  images_dir = os.path.join(root, "images")
  annotations_dir = os.path.join(root, "annotations")
  if not tf.io.gfile.isdir(root):
    raise CorpusError(f"corpus directory {root} does not exist")
  for needed in (images_dir, annotations_dir):
    if not tf.io.gfile.isdir(needed):
      raise CorpusError(f"{root} is not a corpus: it has no {os.path.basename(needed)}/ directory "
                        "(expected images/im<ID>.jpg and annotations/<label>.txt)")
  return images_dir, annotations_dir


def _image_files(images_dir: str, audit: CorpusAudit) -> dict[int, str]:
  """Maps image id to path for the files named im<ID>.<image extension>.

  The others are listed in the audit.
  """
  paths: dict[int, str] = {}
  for name in listdir(images_dir):
    match = image_formats.CORPUS_IMAGE_NAME.match(name)
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
  return paths


def check_label_names(labels: list[str], where: str) -> None:
  """Raises a CorpusError naming ``where`` if a label is called as a label frame's other column
  (``path``): the frame would hold one of the two, and the label would vanish."""
  reserved = sorted(set(labels) & set(RESERVED_LABELS))
  if reserved:
    raise CorpusError(f"{where}: label name(s) {reserved} are reserved (a label frame's "
                      f"{PATH_COLUMN!r} column holds each image's file): rename the label")


def annotation_files(annotations_dir: str) -> dict[str, str]:
  """Maps each label to its annotation file's name: <label>.txt, the extension in any case.

  Two files of one label (``cat.txt`` and ``cat.TXT``) are an error.
  """
  files: dict[str, str] = {}
  for name in listdir(annotations_dir):
    if not name.lower().endswith(ANNOTATION_EXTENSION):
      continue
    label = name[:-len(ANNOTATION_EXTENSION)]
    if label in files:
      raise CorpusError(f"{annotations_dir}: two annotation files for label {label!r}: "
                        f"{files[label]} and {name}")
    files[label] = name
  return files


def _annotated_labels(annotations_dir: str, labels: list[str] | None,
                      audit: CorpusAudit) -> dict[str, str]:
  """Returns the labels to load, sorted, each with its annotation file's name.

  Those are ``labels`` (each needs its file), or every <label>.txt when None.
  """
  files = annotation_files(annotations_dir)
  if labels is None:
    labels = list(files)
  missing = sorted(set(labels) - set(files))
  if missing:
    raise CorpusError(f"{annotations_dir} has no annotation file for label(s) {missing}")
  labels = sorted(labels)
  if not labels:
    raise CorpusError(f"{annotations_dir} holds no <label>.txt annotation file")
  check_label_names(labels, annotations_dir)
  audit.ignored_label_files = [name for label, name in sorted(files.items())
                               if label not in labels]
  return {label: files[label] for label in labels}


def _annotated_ids(annotations_dir: str, label: str, file_name: str, paths: dict[int, str],
                   audit: CorpusAudit) -> list[int]:
  """The ids <label>.txt lists that have an image; repeats and ids without image go to the audit."""
  seen, ids = set(), []
  for line, image_id in _parse_annotation(os.path.join(annotations_dir, file_name)):
    if image_id in seen:
      audit.duplicate_ids.append((label, line, image_id))
      continue
    seen.add(image_id)
    if image_id not in paths:
      audit.missing_images.append((label, line, image_id))
      continue
    ids.append(image_id)
  return ids


def label_columns(frame: pd.DataFrame) -> list[str]:
  """Returns the label names of a label frame, in column order."""
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
