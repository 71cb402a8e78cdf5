"""Label corrections: a reviewed list of (image id, label, add/remove) applied on load.

The corrections apply to a label frame as it is loaded.

The file is a CSV with a header naming at least ``image_id``, ``label`` and
``action`` (``add`` or ``remove``); other columns (a note, the model's
probability) are kept for the reviewer and ignored here, so the review CSV that
``mlc-suspects`` writes is itself a corrections file once pruned to the rows a
human confirmed. It is read and written as CSV (a quoted note may span lines,
as a spreadsheet writes it). Lines starting with ``#`` and blank lines between
rows are skipped::

    image_id,label,action,note
    1234,baby,remove,a puppy
    877,people,add

Image ids are the corpus's: integers for the folder layout, written in ASCII
digits (``01`` is image 1, everywhere: ``image_key``; ``²`` is a bad row), the
file name as written for a CSV source. Nothing is applied silently: the
returned report counts and names every change, every correction that changed
nothing (the label was already so), and every row skipped because its image or
label is not in this corpus/run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import fcntl
import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import tensorflow as tf

from mlc_tf import atomic_files
from mlc_tf.data import corpus as corpus_lib

ACTIONS = ("add", "remove")
REQUIRED_COLUMNS = ("image_id", "label", "action")


class CorrectionsError(corpus_lib.CorpusError):
  """The corrections file cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class Correction:
  image_id: str  # as written; matched to integer ids when the corpus has them
  label: str
  action: str  # "add" or "remove"
  line: int    # in the corrections file, for messages


@dataclasses.dataclass
class CorrectionsReport:
  """What applying a corrections file did."""

  path: str
  added: list[tuple[int | str, str]] = dataclasses.field(default_factory=list)
  removed: list[tuple[int | str, str]] = dataclasses.field(default_factory=list)
  # Corrections that changed nothing: (line, image id, label, action).
  already_so: list[tuple[int, int | str, str, str]] = dataclasses.field(default_factory=list)
  # Skipped rows: (line, image id) / (line, label).
  unknown_images: list[tuple[int, int | str]] = dataclasses.field(default_factory=list)
  unknown_labels: list[tuple[int, str]] = dataclasses.field(default_factory=list)

  def lines(self) -> list[str]:
    """Returns a human-readable summary, one line per kind of outcome."""
    lines = [
        f"corrections {self.path}: {len(self.added)} label(s) added, {len(self.removed)} removed"
    ]
    if self.already_so:
      lines.append(
          f"{len(self.already_so)} correction(s) changed nothing, the label was already so "
          f"(lines {', '.join(str(r[0]) for r in self.already_so[:5])})")
    if self.unknown_images:
      lines.append(f"{len(self.unknown_images)} correction(s) skipped: image id not in the corpus "
                   f"({', '.join(f'line {n} id {i}' for n, i in self.unknown_images[:5])})")
    if self.unknown_labels:
      lines.append(f"{len(self.unknown_labels)} correction(s) skipped: label not in this run "
                   f"({', '.join(f'line {n} {label!r}' for n, label in self.unknown_labels[:5])})")
    return lines

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RowProblem:
  """A line of a corrections file that cannot be used, and why."""

  line: int
  message: str


def image_key(image_id: str) -> int | str:
  """Returns an image id's one meaning, the same for training and the review app.

  ASCII digits name a number (``01`` is 1); anything else is the text as written
  (a CSV source's file name). ``"²".isdigit()`` is true, yet ``²`` is no id.
  """
  return int(image_id) if image_id.isascii() and image_id.isdigit() else image_id


def records(text: str):
  """Yields (line number, raw text, kind, value) for each record of a corrections file's text.

  Read as CSV (a quoted note may span lines; U+2028 or NEL inside one is text,
  not a line end). The kind is "skip" (a blank or ``#`` line between records;
  value None), "header" (the first record; value its fields), "row" (value the
  row as a dict by header column) or "bad" (CSV that cannot be read, the last
  record; value why). The raw text keeps its line ends, so a rewrite keeps
  every record it does not change as written. The one reading of the format,
  for the parser and the writer.
  """
  physical = io.StringIO(text.removeprefix("\ufeff"), newline="")  # past a spreadsheet's BOM
  skipped, record, count = [], [], 0

  def lines():  # the csv reader's lines; blank and comment lines between records left out
    nonlocal count
    for line in physical:
      count += 1
      if not record and (not line.strip() or line.lstrip().startswith("#")):
        skipped.append((count, line))
      else:
        record.append(line)
        yield line

  header = None
  reader = csv.reader(lines())
  while True:
    try:
      fields = next(reader, None)
    except csv.Error as error:
      yield from ((number, raw, "skip", None) for number, raw in skipped)
      yield count - len(record) + 1, "".join(record), "bad", f"not readable as CSV: {error}"
      return
    yield from ((number, raw, "skip", None) for number, raw in skipped)
    skipped.clear()
    if fields is None:
      return
    number, raw = count - len(record) + 1, "".join(record)
    record.clear()
    fields = [field.strip() for field in fields]
    if header is None:
      header = fields
      yield number, raw, "header", header
    else:
      yield number, raw, "row", dict(zip(header, fields))


def _missing_columns(header: list[str]) -> list[str]:
  return [column for column in REQUIRED_COLUMNS if column not in header]


def parse_corrections(text: str,
                      integer_ids: bool = False) -> tuple[list[Correction], list[RowProblem]]:
  """Returns the usable corrections of a corrections file's text, and every line that is not.

  The unusable lines are listed by line number.

  A bad header makes every row unusable: it is the one problem then. A row
  that contradicts an earlier one of the same image (``image_key``: ``01`` is
  ``1``) and label is a problem; the earlier row stands. With ``integer_ids``
  (a folder corpus's ids), an id other than ASCII digits is a problem too.
  """
  corrections, problems, seen = [], [], {}
  for number, raw, kind, value in records(text):
    if kind == "bad":
      problems.append(RowProblem(number, value))
    if kind == "header" and _missing_columns(value):
      return [], [RowProblem(number, f"header {raw.rstrip()!r} lacks column(s) "
                                     f"{_missing_columns(value)} "
                                     f"(expected {','.join(REQUIRED_COLUMNS)})")]
    if kind != "row":
      continue
    row = value
    image_id, label, action = (row.get(c, "") for c in REQUIRED_COLUMNS)
    action = action.lower()
    key = (image_key(image_id), label)
    if not image_id:
      problems.append(RowProblem(number, "no image id"))
    elif integer_ids and not isinstance(key[0], int):
      problems.append(RowProblem(number, f"image id {image_id!r} is not a number in ASCII digits, "
                                         "as the corpus's ids are"))
    elif not label:
      problems.append(RowProblem(number, "no label"))
    elif action not in ACTIONS:
      problems.append(RowProblem(number, f"action must be one of {ACTIONS}, found {action!r}"))
    elif key in seen and seen[key].action != action:
      problems.append(RowProblem(number, f"{action} {label!r} for image {image_id} contradicts "
                                         f"line {seen[key].line} ({seen[key].action} for image "
                                         f"{seen[key].image_id})"))
    else:
      correction = Correction(image_id, label, action, number)
      seen.setdefault(key, correction)
      corrections.append(correction)
  return corrections, problems


def read_corrections(path: str, integer_ids: bool = False) -> list[Correction]:
  """Parses a corrections CSV; garbage and contradictions are errors naming the line.

  ``integer_ids``: as ``parse_corrections``.
  """
  if not tf.io.gfile.exists(path):
    raise CorrectionsError(f"corrections file {path} does not exist")
  corrections, problems = parse_corrections(read_text(path), integer_ids)
  if problems:
    raise CorrectionsError(f"{path}:{problems[0].line}: {problems[0].message}")
  return corrections


def read_text(path: str, what: str = "corrections file",
              error: type[corpus_lib.CorpusError] = CorrectionsError) -> str:
  """Returns a corrections file's text (or another reviewed CSV's: ``what`` names it in messages).

  One that is not UTF-8 text (or not a file) is an ``error`` (CorrectionsError) saying so.
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read().decode("utf-8")
  except UnicodeDecodeError as failure:
    raise error(f"{what} {path} is not UTF-8 text (byte {failure.start}: "
                f"{failure.object[failure.start:failure.start + 1]!r})") from None
  except (OSError, tf.errors.OpError) as failure:
    raise error(f"{what} {path} cannot be read: {getattr(failure, 'message', failure)}") from None


def upsert_corrections(path: str, rows: Iterable[tuple[str, str, str, str]]) -> None:
  """Writes (image id, label, action, note) rows into a local corrections file.

  Each row replaces the earlier row of its (image id, label) pair.

  For a reviewer who decides one label at a time and may change their mind:
  the file is rewritten whole under an exclusive lock (``<path>.lock``, so
  two writers, threads or processes, take turns) into a temporary file that
  then replaces it, so a reader or a killed writer sees the old file or the
  new one, never half of one. Lines this does not touch (comments, other
  columns, rows it cannot parse) stay as written; a new file gets the header
  ``image_id,label,action,note``; a column the file's header lacks is not written.
  """
  with exclusive(path):
    upsert_holding_lock(path, rows)


@contextlib.contextmanager
def exclusive(path: str):
  """Holds the corrections file's lock (``<path>.lock``).

  Its writers, threads or processes, take turns.
  """
  with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the lock file closes
    yield


def remove_abandoned_temporaries(path: str) -> list[str]:
  """Removes the temporary files of writers of ``path`` killed mid-write; returns them.

  Only a writer holding the lock makes one, so with the lock held every one there is abandoned:
  those ``atomic_files.write_text`` stages (``.staging-<pid>-<hex>-<name>``) and those of versions
  before it (``.<name>.<random>``).
  """
  directory, name = os.path.split(os.path.abspath(path))
  with exclusive(path):
    removed = [
        os.path.join(directory, entry)
        for entry in os.listdir(directory)
        if (entry.startswith(f".{name}.") or
            (entry.startswith(".staging-") and entry.endswith(f"-{name}"))) and
        os.path.isfile(os.path.join(directory, entry))
    ]
    for temporary in removed:
      os.remove(temporary)
  return removed


def upsert_holding_lock(path: str, rows: Iterable[tuple[str, str, str, str]]) -> None:
  """Does ``upsert_corrections`` for a caller inside ``exclusive(path)``.

  That caller decided the rows on what it read there.
  """
  rows = [tuple(str(value) for value in row) for row in rows]
  for image_id, label, action, _ in rows:
    if not image_id or not label or action not in ACTIONS:
      raise ValueError(f"a correction needs an image id, a label and an action in {ACTIONS}: "
                       f"{(image_id, label, action)}")
  upsert_records(path, {(image_key(row[0]), row[1]): dict(zip((*REQUIRED_COLUMNS, "note"), row))
                        for row in rows},
                 lambda row: (image_key(row.get("image_id", "")), row.get("label", "")),
                 (*REQUIRED_COLUMNS, "note"))


def upsert_records(path: str, pending: dict, key_of: Callable[[dict], object],
                   new_header: Sequence[str], what: str = "corrections file",
                   error: type[corpus_lib.CorpusError] = CorrectionsError) -> None:
  """Rewrites a local reviewed CSV (``records``' format), each of ``pending``'s rows (key ->
  {column: value}) replacing the row whose ``key_of`` is its key, or appended; for a caller
  inside ``exclusive(path)``.

  The writer of the corrections file and of the additions file
  (``mlc_tf/data/additions.py``): written whole, atomically; lines it does not
  touch (comments, other columns) stay as written; a new file gets ``new_header``,
  whose columns the file's header must hold (else ``error``, nothing written); a
  column the file's header lacks is not written.
  """
  pending = dict(pending)
  text = read_text(path, what, error) if os.path.exists(path) else ""
  ending = "\r\n" if text.partition("\n")[0].endswith("\r") else "\n"  # the file's own
  required = [column for column in new_header if column != "note"]
  header, kept, replaced = None, [], set()
  for number, raw, kind, value in records(text):
    if kind == "bad":
      raise error(f"{path}:{number}: {value}: not writing into it")
    if kind == "header":
      header = value
      missing = [column for column in required if column not in header]
      if missing:
        raise error(f"{path}: header {raw.rstrip()!r} lacks column(s) {missing}: "
                    "not writing into it")
    if kind != "row":
      kept.append(raw)
      continue
    key = key_of(value)
    if key in replaced:  # another row of a key just rewritten (``01`` after ``1``)
      continue
    if key in pending:
      kept.append(_csv_record(header, pending.pop(key), ending))
      replaced.add(key)
    else:
      kept.append(raw)
  if header is None:
    header = list(new_header)
    kept.append(",".join(header) + ending)
  kept += [_csv_record(header, row, ending) for row in pending.values()]
  # a last line without its line end gets one before more follow
  atomic_files.write_text(path, "".join(
      record if record.endswith(("\n", "\r")) else record + ending for record in kept))


def _csv_record(header: list[str], values: dict, ending: str) -> str:
  out = io.StringIO()
  csv.writer(out, lineterminator=ending).writerow([values.get(column, "") for column in header])
  return out.getvalue()


def apply_corrections(frame: pd.DataFrame, corrections: list[Correction],
                      path: str = "<corrections>") -> tuple[pd.DataFrame, CorrectionsReport]:
  """Returns a corrected copy of a label frame, and the report of what changed."""
  frame = frame.copy()
  labels = set(corpus_lib.label_columns(frame))
  integer_ids = pd.api.types.is_integer_dtype(frame.index)
  report = CorrectionsReport(path)
  for c in corrections:
    image_id = image_key(c.image_id) if integer_ids else c.image_id
    if c.label not in labels:
      report.unknown_labels.append((c.line, c.label))
    elif image_id not in frame.index:
      report.unknown_images.append((c.line, image_id))
    elif frame.at[image_id, c.label] == (c.action == "add"):
      report.already_so.append((c.line, image_id, c.label, c.action))
    else:
      frame.at[image_id, c.label] = int(c.action == "add")
      (report.added if c.action == "add" else report.removed).append((image_id, c.label))
  return frame, report


def apply_file(frame: pd.DataFrame, path: str | None) -> pd.DataFrame:
  """Applies the corrections file at ``path`` (none when ``None``) and logs its report.

  This is the loading hook.
  """
  if not path:
    return frame
  integer_ids = pd.api.types.is_integer_dtype(frame.index)
  frame, report = apply_corrections(frame, read_corrections(path, integer_ids), path)
  for line in report.lines():
    logging.warning(line)
  return frame
