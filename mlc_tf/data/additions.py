"""The additions file: newly tagged photos that join the training split (``config.data.additions``).

Users hold many more untagged photos than tagged ones; ``mlc-suggest`` picks
those worth tagging, a reviewer tags them (``mlc-review --suggestions``'s "Tag
next" queue, or by hand) and the tags land here. The photos stay where they
are, in the untagged folder: the file lives in that folder (or above it), and
each row names its photo by its path relative to the file's folder. A CSV
read as the corrections file is (``corrections.records``: a header, ``#``
comments and blank lines between rows, quoted cells, a spreadsheet's BOM),
with at least the columns ``image`` and ``labels`` (others, such as ``note``,
are kept for the reviewer and ignored)::

    image,labels,note
    IMG_0001.jpg,people portrait,
    trip/IMG_0002.jpg,,"tagged: none of the labels"

``labels`` holds space-separated label names; empty means the photo was
tagged and none of the labels applies (a negative for every label), which
is itself a lesson.

Training adds the listed photos to its training split only: validation and
test stay the corpus's, so a run's figures stay comparable with and without
additions. Nothing is dropped quietly. A row that cannot be used stops the
run, named by line (``AdditionsError``): no image, a path that leaves the
file's folder (absolute, ``..``), a photo listed twice, a photo that is not
in the folder (moved or deleted), a photo that is already one of the
corpus's (its labels are corrected through the corrections file). A label
this run does not train (``config.data.labels``) is ignored for that photo
and counted in the log and the report; a photo that cannot be decoded is
skipped and named, as in a corpus (``corpus.audit_frame``).

The file is written as the corrections file is (``upsert_additions``): whole,
atomically, under its lock, a row replaced by image.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath

import pandas as pd

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import corrections, sources

COLUMNS = ("image", "labels")
WHAT = "additions file"


class AdditionsError(corpus_lib.CorpusError):
  """The additions file cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Addition:
  image: str             # relative to the additions file's folder, '/'-separated, normalised
  labels: tuple[str, ...]
  line: int              # in the additions file, for messages


def image_key(image: str) -> str:
  """Returns a row's photo in one spelling: ``/``-separated, without ``./`` or doubled slashes."""
  return posixpath.normpath(image.replace("\\", "/")) if image else image


def parse_additions(text: str) -> tuple[list[Addition], list[corrections.RowProblem]]:
  """Returns the usable rows of an additions file's text, and every line that is not, by number.

  A header without ``image`` and ``labels`` makes every row unusable: it is the one problem
  then.
  """
  additions, problems, seen = [], [], {}
  for number, raw, kind, value in corrections.records(text):
    if kind == "bad":
      problems.append(corrections.RowProblem(number, value))
    missing = [column for column in COLUMNS if kind == "header" and column not in value]
    if missing:
      return [], [corrections.RowProblem(number, f"header {raw.rstrip()!r} lacks column(s) "
                                                 f"{missing} (expected {','.join(COLUMNS)})")]
    if kind != "row":
      continue
    image = image_key(value.get("image", ""))
    labels = tuple(dict.fromkeys(value.get("labels", "").split()))
    if not image:
      problems.append(corrections.RowProblem(number, "no image"))
    elif _escapes(image):
      problems.append(corrections.RowProblem(
          number, f"image {image!r} must be a path relative to the additions file's folder, "
                  "without '..'"))
    elif image in seen:
      problems.append(corrections.RowProblem(
          number, f"image {image!r} is listed again (first on line {seen[image]}): keep one row"))
    else:
      seen[image] = number
      additions.append(Addition(image, labels, number))
  return additions, problems


def _escapes(image: str) -> bool:
  """Tells whether a row's path could leave the file's folder (``sources.resolve_under``'s
  test)."""
  try:
    sources.resolve_under(".", image, WHAT)
  except corpus_lib.CorpusError:
    return True
  return False


def read_additions(path: str) -> list[Addition]:
  """Parses an additions file; its first unusable row is an AdditionsError naming the line."""
  if not os.path.isfile(path):
    raise AdditionsError(f"{WHAT} {path} does not exist (config.data.additions)")
  additions, problems = parse_additions(corrections.read_text(path, WHAT, AdditionsError))
  if problems:
    raise AdditionsError(f"{path}:{problems[0].line}: {problems[0].message}")
  return additions


def tagged(path: str) -> tuple[dict[str, tuple[str, ...]], list[corrections.RowProblem]]:
  """Returns the photos an additions file tags (image -> labels) and its unusable rows; none when
  the file is absent. For the review page, which shows a bad row rather than stopping."""
  if not os.path.exists(path):
    return {}, []
  additions, problems = parse_additions(corrections.read_text(path, WHAT, AdditionsError))
  return {addition.image: addition.labels for addition in additions}, problems


def upsert_additions(path: str, rows: dict[str, list[str]], note: str = "") -> None:
  """Writes (image -> labels) rows into a local additions file; a row replaces its image's.

  As ``corrections.upsert_corrections``: under the file's lock, whole and
  atomically; the other lines stay as written; a new file gets the header
  ``image,labels,note``. Images are relative to the file's folder.
  """
  with corrections.exclusive(path):
    upsert_holding_lock(path, rows, note)


def upsert_holding_lock(path: str, rows: dict[str, list[str]], note: str = "") -> None:
  """Does ``upsert_additions`` for a caller inside ``corrections.exclusive(path)``."""
  corrections.upsert_records(
      path, {image_key(image): {"image": image_key(image), "labels": " ".join(labels),
                                "note": note} for image, labels in rows.items()},
      lambda row: image_key(row.get("image", "")), (*COLUMNS, "note"), WHAT, AdditionsError)


def join_training(train: pd.DataFrame, corpus_frame: pd.DataFrame, path: str,
                  strict: bool = False) -> tuple[pd.DataFrame, dict]:
  """Returns ``train`` with the additions file's photos appended, and a summary for the report.

  The photos' rows have ``train``'s label columns (1 where the row names the label) and its
  ``path``; their index is the photo's path. ``corpus_frame``: the whole corpus, to refuse a photo
  that is one of its images.

  Raises:
    AdditionsError: the file or a row cannot be used (module docstring), or the corpus has no
      files (a TFDS source).
    corpus.CorpusError: a photo cannot be read at all, or ``strict`` and one cannot be decoded.
  """
  if corpus_lib.PATH_COLUMN not in train:
    raise AdditionsError(f"config.data.additions ({path}) needs a file source (folder: or csv:): "
                         "the training images of a TFDS source are records, which photos of a "
                         "folder cannot join")
  label_names = corpus_lib.label_columns(train)
  folder = os.path.dirname(os.path.abspath(path))
  in_corpus = {os.path.realpath(p): image_id
               for image_id, p in corpus_frame[corpus_lib.PATH_COLUMN].items()}
  rows, other_labels = {}, []
  for addition in read_additions(path):
    photo = os.path.join(folder, *addition.image.split("/"))
    if not os.path.isfile(photo):
      raise AdditionsError(f"{path}:{addition.line}: image {addition.image!r} is not in {folder} "
                           "(moved or deleted?): put it back or delete the row")
    if os.path.realpath(photo) in in_corpus:
      raise AdditionsError(
          f"{path}:{addition.line}: image {addition.image!r} is the corpus's image "
          f"{in_corpus[os.path.realpath(photo)]}: correct its labels in the corrections file "
          "(config.data.corrections), not here")
    other_labels += [(addition.line, label) for label in addition.labels
                     if label not in label_names]
    rows[photo] = [int(label in addition.labels) for label in label_names]
  frame = pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="image_id"),
                       columns=label_names, dtype="uint8")
  frame[corpus_lib.PATH_COLUMN] = list(rows)
  audit = corpus_lib.CorpusAudit(source=path, num_images=len(frame))
  # Not the audit's strict mode: a few photos leave most labels without a positive, no oddity here.
  frame = corpus_lib.audit_frame(frame, audit) if len(frame) else frame
  if strict and audit.undecodable_images:
    raise AdditionsError(f"{path}: {len(audit.undecodable_images)} photo(s) cannot be decoded "
                         f"({audit.undecodable_images[0][0]}: {audit.undecodable_images[0][1]}) "
                         "[strict]", audit)
  summary = {"file": path, "rows": len(rows), "joined": len(frame),
             "tagged_no_label": int((frame[label_names].sum(axis=1) == 0).sum()),
             "skipped_undecodable": audit.undecodable_images,
             "labels_not_in_run": other_labels}
  logging.info("additions %s: %d newly tagged photo(s) join the %d training images", path,
               len(frame), len(train))
  if audit.undecodable_images:
    logging.warning("additions %s: %d photo(s) cannot be decoded and were skipped (%s)", path,
                    len(audit.undecodable_images),
                    ", ".join(f"{p}: {why}" for p, why in audit.undecodable_images[:5]))
  if other_labels:
    logging.warning("additions %s: %d label(s) this run does not train were ignored (%s)", path,
                    len(other_labels),
                    ", ".join(f"line {n} {label!r}" for n, label in other_labels[:5]))
  return pd.concat([train, frame]), summary
