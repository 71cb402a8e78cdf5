"""Where a corpus comes from: ``config.data.source``.

  folder:<dir>                        a corpus folder, images/ + annotations/ (a bare
                                      directory means the same)
  csv:<file>                          a CSV of image file names and their labels, images
                                      under the CSV's folder
  tfds:<name>[:<version>][:<split>]   TFDS records: mlc_tf's own builders (mlc_corpus,
                                      mlc_digits) or a public multi-label dataset such as
                                      voc/2007

Every source gives the same three things, so training does not care which one
it reads: a label frame (pandas, index ``image_id``, one uint8 0/1 column per
label, plus ``path`` for file sources) with an audit of what was odd; a
train/validation/test split of it; and, for any rows of the frame, what
``pipeline.make_dataset`` takes as ``images``: their file paths, or a
``tf.data.Dataset`` of their encoded image bytes in row order. Labels always
come from the frame, so whatever edits the frame (label rules, corrections)
applies to every source alike. All paths go through ``tf.io.gfile``.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import os
import re

import ml_collections
import pandas as pd
import tensorflow as tf

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import source_base

CorpusError = corpus_lib.CorpusError
# A 2-column CSV with this header holds space-separated labels.
SPACE_SEPARATED_HEADERS = ("labels", "tags")
_URL_OR_DRIVE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def open_source(spec: str, data: ml_collections.ConfigDict) -> source_base.Source:
  """Opens ``spec`` (see the module docstring) with the settings of ``data`` (config.data)."""
  if not spec:
    raise CorpusError(
        "no data source: set config.data.source (folder:, csv: or tfds:) or --data_dir")
  kind, _, rest = spec.partition(":")
  labels, strict = data.get("labels"), data.get("strict", False)
  if kind == "csv":
    frame, audit = load_csv(rest, labels)
    # Decodes every image once, as for folders.
    frame = corpus_lib.audit_frame(frame, audit, strict=strict)
    return source_base.Source(spec, frame, audit)
  if kind == "tfds":
    from mlc_tf.data.tfds import source as tfds_source  # TFDS is imported for tfds: sources only
    return tfds_source.open_tfds(spec, rest, data)
  root = rest if kind == "folder" else spec  # a bare directory, also gs://… or C:\…
  frame, audit = corpus_lib.load_corpus(root, labels, strict=strict)
  return source_base.Source(spec, frame, audit)


@dataclasses.dataclass
class CsvAudit(corpus_lib.CorpusAudit):
  """A CSV source's audit: also the rows whose image file is missing."""

  missing_files: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (CSV line, path)

  def warnings(self) -> list[str]:
    lines = super().warnings()
    if self.missing_files:
      examples = ", ".join(f"line {line}: {path}" for line, path in self.missing_files[:5])
      lines.insert(
          0, f"{len(self.missing_files)} CSV row(s) name an image file that does not exist "
          f"and were skipped ({examples})")
    return lines


def resolve_under(root: str, relative: str, where: str) -> str:
  """Returns ``root``/``relative``, refusing any path that could leave ``root``.

  Such a path is absolute, a URL, names a drive or holds ``..``.
  """
  relative = relative.replace("\\", "/")
  parts = relative.split("/")
  if relative.startswith("/") or _URL_OR_DRIVE.match(relative) or ".." in parts:
    raise CorpusError(f"{where}: image path {relative!r} escapes the corpus root {root}: "
                      "give it relative to the CSV's folder, without '..'")
  return os.path.join(root, *[part for part in parts if part not in ("", ".")])


def _read_csv_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
  if not tf.io.gfile.exists(path):
    raise CorpusError(f"CSV file {path} does not exist")
  with tf.io.gfile.GFile(path, "r") as f:
    reader = csv.reader(io.StringIO(f.read()))
    rows = [(reader.line_num, row) for row in reader]
  rows = [(line, [cell.strip() for cell in row]) for line, row in rows if any(cell.strip()
                                                                              for cell in row)]
  if not rows:
    raise CorpusError(
        f"{path} is empty: expected a header row (file, then `labels` or one column per label)")
  (_, header), body = rows[0], rows[1:]
  return header, body


def load_csv(path: str, labels: list[str] | None = None) -> tuple[pd.DataFrame, CsvAudit]:
  """Reads a CSV label file into a label frame and an audit.

  The frame's index is the image path as written.

  Two layouts, both with a header row whose first column names the image file
  (relative to the CSV's folder): ``file,labels`` (or ``tags``) with
  space-separated label names (empty: no label), or ``file,<label>,<label>,…``
  with one 0/1 column per label. ``labels`` keeps those labels only; a label
  no row carries is kept with no positive (and reported).
  """
  root = os.path.dirname(path)
  header, body = _read_csv_rows(path)
  columns = _label_columns(path, header)
  rows = _parse_csv_rows(path, root, header, body, columns)
  available = _chosen_labels(path, rows, columns, labels)
  audit = CsvAudit(source=path)
  present_files = _existing_files(root, rows)
  kept = []
  for name, (line, _) in rows.items():
    if name in present_files:
      kept.append(name)
    else:
      audit.missing_files.append((line, name))
  if not kept:
    raise CorpusError(f"{path}: none of its {len(rows)} image file(s) exist under {root}")
  frame = pd.DataFrame([[int(label in rows[name][1]) for label in available] for name in kept],
                       index=pd.Index(kept, name="image_id"), columns=available, dtype="uint8")
  frame[corpus_lib.PATH_COLUMN] = [resolve_under(root, name, path) for name in kept]
  audit.num_images = len(frame)
  audit.empty_labels = [label for label in available if not frame[label].any()]
  return frame, audit


def _label_columns(path: str, header: list[str]) -> list[str] | None:
  """Returns the 0/1 label columns the header names.

  None for the ``file,labels`` layout (space-separated names).
  """
  if len(header) == 2 and header[1].lower() in SPACE_SEPARATED_HEADERS:
    return None
  columns = header[1:]
  if not columns:
    raise CorpusError(
        f"{path}:1: the header names no label column (expected `file,labels` or `file,<label>,…`)")
  if "" in columns or len(set(columns)) != len(columns):
    raise CorpusError(
        f"{path}:1: label columns must have distinct, non-empty names, found {columns}")
  return columns


def _parse_csv_rows(path: str, root: str, header: list[str], body: list[tuple[int, list[str]]],
                    columns: list[str] | None) -> dict[str, tuple[int, set[str]]]:
  """Maps each image path as written to (CSV line, its labels).

  Any malformed row is an error naming its line.
  """
  rows: dict[str, tuple[int, set[str]]] = {}
  for line, row in body:
    where = f"{path}:{line}"
    if len(row) != len(header):
      raise CorpusError(
          f"{where}: expected {len(header)} columns as in the header, found {len(row)}")
    name = row[0].replace("\\", "/")
    if not name:
      raise CorpusError(f"{where}: empty image path")
    resolve_under(root, name, where)
    if name in rows:
      raise CorpusError(f"{where}: {name} is listed twice (first on line {rows[name][0]})")
    if columns is None:
      present = set(row[1].split())
    else:
      bad = [(label, value) for label, value in zip(columns, row[1:]) if value not in ("0", "1")]
      if bad:
        raise CorpusError(f"{where}: label columns hold 0 or 1, found {bad[0][0]}={bad[0][1]!r}")
      present = {label for label, value in zip(columns, row[1:]) if value == "1"}
    rows[name] = (line, present)
  return rows


def _chosen_labels(path: str, rows: dict[str, tuple[int, set[str]]], columns: list[str] | None,
                   labels: list[str] | None) -> list[str]:
  """Returns the frame's label columns, sorted.

  Those are ``labels`` when given, else every column or every label a row names.
  """
  available = sorted(columns or set().union(*(present for _, present in rows.values())))
  if labels is not None:
    unknown = sorted(set(labels) - set(available))
    if unknown and columns is not None:
      raise CorpusError(f"{path}: no column for label(s) {unknown}; columns: {columns}")
    available = sorted(labels)
  if not available:
    raise CorpusError(f"{path}: no row carries any label, and config.data.labels names none")
  corpus_lib.check_label_names(available, path)
  return available


def _existing_files(root: str, rows: dict) -> set[str]:
  """Returns the names among ``rows`` whose file exists.

  It lists each folder once rather than stat each file.
  """
  by_folder = collections.defaultdict(list)
  for name in rows:
    folder, _, base = name.rpartition("/")
    by_folder[folder].append((name, base))
  found = set()
  for folder, names in by_folder.items():
    directory = os.path.join(root, folder) if folder else root
    listing = set(tf.io.gfile.listdir(directory)) if tf.io.gfile.isdir(directory) else set()
    found.update(name for name, base in names if base in listing)
  return found
