"""What the review pages show: the corpus, the model's predictions, the suspects and the corrections
file.

The corrections file is the one ``--config.data.corrections`` reads, and the
only state the app writes: every decision is upserted into it at once
(``corrections.upsert_corrections``), and every page reads it afresh, so a
restarted server, a second tab or a hand edit are all seen as they are.

A decision is written as the label's reviewed truth: accepting a suspect
writes its proposed action; rejecting it writes the opposite action, which
confirms the label as given (training reports such rows as "changed
nothing"), so that the review knows that suspect is decided and resumes after it.
"""

from __future__ import annotations

import dataclasses
import os

import pandas as pd

from mlc_tf.data import additions as additions_lib
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import corrections as corrections_lib
from mlc_tf.review import tagger as tagger_lib

SUSPECT_COLUMNS = ("image_id", "label", "action")
ACCEPTED_NOTE = "review: suspect accepted"
REJECTED_NOTE = "review: suspect rejected, label kept as given"
EDITED_NOTE = "review: edited"
TAGGED_NOTE = "review: tagged"


class ReviewError(ValueError):
  """An input the review cannot start with; the message says which and why."""


class EditConflict(Exception):
  """A photo's labels, or a suspect's decision, changed (another tab, a hand edit) since the page
  that edits them showed them."""

  def __init__(self, current: set[str], decision: str | None = None):
    super().__init__(f"its labels are now {sorted(current) or 'none'}" +
                     (f" and the suspect is {decision}" if decision else ""))
    self.current = current


@dataclasses.dataclass
class Suspect:
  """One row of mlc-suspects' CSV: the change proposed for one label of one photo."""

  image_id: int
  label: str
  action: str  # "add" or "remove": what the model proposes
  probability: float | None
  threshold: float | None


@dataclasses.dataclass
class Corrections:
  """The corrections file as it is now: its usable rows by (image id, label), and its bad rows."""

  actions: dict[tuple[int, str], str]
  problems: list[corrections_lib.RowProblem]
  unreadable: str | None = None  # why the file cannot be read at all (not UTF-8 text...)


@dataclasses.dataclass
class QueuedPhoto:
  """One row of mlc-suggest's CSV: an untagged photo to tag, and what the model says of it."""

  file: str                        # absolute
  unsure_labels: tuple[str, ...]
  model_labels: tuple[str, ...]


@dataclasses.dataclass
class Tagged:
  """The additions file as it is now: its photos' labels (relative image -> labels), its bad
  rows."""

  labels: dict[str, tuple[str, ...]]
  problems: list[corrections_lib.RowProblem]
  unreadable: str | None = None


@dataclasses.dataclass
class ReviewState:
  """Everything loaded once at start; the corrections file is read on each request."""

  data_dir: str
  frame: pd.DataFrame  # the corpus's label frame as annotated (corpus.load_corpus)
  corrections_path: str
  tagger: tagger_lib.Tagger | None = None
  predictions: pd.DataFrame | None = None  # tagger.predict_corpus's frame
  suspects: list[Suspect] = dataclasses.field(default_factory=list)
  suspects_path: str | None = None
  # rows not of this corpus, and why
  skipped_suspects: list[str] = dataclasses.field(default_factory=list)
  # The "tag next" queue (mlc-suggest's CSV) and the additions file its tags go to.
  queue: list[QueuedPhoto] = dataclasses.field(default_factory=list)
  additions_path: str | None = None
  skipped_queue: list[str] = dataclasses.field(default_factory=list)  # rows without a photo, why

  @property
  def label_names(self) -> list[str]:
    """Returns the corpus's labels, in column order."""
    return corpus_lib.label_columns(self.frame)

  def image_path(self, image_id: int) -> str | None:
    """Returns the image file of a corpus id, only when it lies inside the corpus's images/ once
    links are resolved."""
    if image_id not in self.frame.index:
      return None
    images_dir = os.path.realpath(os.path.join(self.data_dir, "images"))
    path = os.path.realpath(self.frame.at[image_id, corpus_lib.PATH_COLUMN])
    return path if os.path.commonpath([images_dir, path
                                      ]) == images_dir and os.path.isfile(path) else None

  def read_corrections(self) -> Corrections:
    """Reads the corrections file: its actions by (image id, label) and its problems, if any."""
    if not os.path.exists(self.corrections_path):
      return Corrections({}, [])
    try:
      rows, problems = corrections_lib.parse_corrections(
          corrections_lib.read_text(self.corrections_path), integer_ids=True)
    except corrections_lib.CorrectionsError as error:
      return Corrections({}, [], unreadable=str(error))
    # rows of one (image, label) agree (parse_corrections): the first stands for all
    actions = {}
    for row in rows:
      actions.setdefault((corrections_lib.image_key(row.image_id), row.label), row.action)
    return Corrections(actions, problems)

  def current_labels(self, corrections: Corrections) -> pd.DataFrame:
    """Returns the corpus's 0/1 labels with the corrections file applied (rows of other images or
    labels ignored)."""
    labels = self.frame[self.label_names].copy()
    for (image_id, label), action in corrections.actions.items():
      if image_id in labels.index and label in labels.columns:
        labels.at[image_id, label] = int(action == "add")
    return labels

  def suspect_decision(self, suspect: Suspect, corrections: Corrections) -> str | None:
    """Returns "accepted", "rejected" or None (undecided), from the corrections file."""
    action = corrections.actions.get((suspect.image_id, suspect.label))
    if action is None:
      return None
    return "accepted" if action == suspect.action else "rejected"

  def labels_of(self, image_id: int, corrections: Corrections) -> set[str]:
    """Returns one photo's labels, the corrections file applied."""
    row = self.current_labels(corrections).loc[image_id]
    return {label for label in self.label_names if row[label]}

  def decide_suspect(self, index: int, accept: bool, shown: set[str], shown_decision: str) -> None:
    """Writes a reviewer's verdict on suspect ``index`` to the corrections file.

    ``shown`` and ``shown_decision`` ("accepted", "rejected", "undecided") are
    the photo's labels and the suspect's decision as the deciding page showed
    them. As in ``edit_labels``, a verdict given on a state that has changed
    since (another tab decided it, or edited the photo) is refused
    (EditConflict) unless it is already the verdict given.
    """
    suspect = self.suspects[index]
    action = suspect.action if accept else ("add" if suspect.action == "remove" else "remove")
    verdict = "accepted" if accept else "rejected"
    with corrections_lib.exclusive(self.corrections_path):
      corrections = self.read_corrections()
      current = self.labels_of(suspect.image_id, corrections)
      decision = self.suspect_decision(suspect, corrections) or "undecided"
      if decision != verdict and (current, decision) != (shown, shown_decision):
        raise EditConflict(current, decision)
      corrections_lib.upsert_holding_lock(self.corrections_path, [
          (str(suspect.image_id), suspect.label, action,
           ACCEPTED_NOTE if accept else REJECTED_NOTE)])

  def edit_labels(self, image_id: int, checked: set[str], shown: set[str]) -> int:
    """Sets one photo's labels to ``checked``, writing those that differ; returns how many.

    ``shown`` is what the editing page showed. Read and write happen under the
    file's lock, and an edit made on labels that have changed since is refused
    (EditConflict), so of two tabs the second is told, not merged into a set
    neither asked for.
    """
    with corrections_lib.exclusive(self.corrections_path):
      current = self.labels_of(image_id, self.read_corrections())
      if current != shown and current != checked:
        raise EditConflict(current)
      rows = [(str(image_id), label, "add" if label in checked else "remove", EDITED_NOTE)
              for label in self.label_names if (label in current) != (label in checked)]
      if rows:
        corrections_lib.upsert_holding_lock(self.corrections_path, rows)
    return len(rows)


  def image_of(self, photo: QueuedPhoto) -> str:
    """Returns a queued photo's name in the additions file: relative to its folder."""
    folder = os.path.dirname(os.path.abspath(self.additions_path))
    return os.path.relpath(photo.file, folder).replace(os.sep, "/")

  def read_tagged(self) -> Tagged:
    """Reads the additions file: the photos it tags and its problems, if any."""
    try:
      labels, problems = additions_lib.tagged(self.additions_path)
    except additions_lib.AdditionsError as error:
      return Tagged({}, [], unreadable=str(error))
    return Tagged(labels, problems)

  def tags_of(self, index: int, tagged: Tagged) -> tuple[bool, set[str]]:
    """Returns whether queued photo ``index`` is tagged, and its labels."""
    image = self.image_of(self.queue[index])
    return image in tagged.labels, set(tagged.labels.get(image, ()))

  def tag_photo(self, index: int, checked: set[str], shown: tuple[bool, set[str]]) -> None:
    """Writes queued photo ``index``'s labels (``checked``; none: tagged with no label) into the
    additions file.

    ``shown`` is (tagged, labels) as the tagging page showed them; as in
    ``edit_labels``, tags given on a state that has changed since (another tab,
    a hand edit) are refused (EditConflict) unless they are already so.
    """
    with corrections_lib.exclusive(self.additions_path):
      current = self.tags_of(index, self.read_tagged())
      if current != shown and current != (True, checked):
        raise EditConflict(current[1])
      labels = [name for name in self.label_names if name in checked]
      additions_lib.upsert_holding_lock(self.additions_path,
                                        {self.image_of(self.queue[index]): labels}, TAGGED_NOTE)


def read_suggestions(path: str) -> tuple[list[QueuedPhoto], list[str]]:
  """Reads mlc-suggest's CSV: its rows in rank order whose photo exists, and the others, named."""
  try:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
  except (OSError, ValueError) as error:
    raise ReviewError(f"cannot read the suggestions file {path}: {error}") from None
  if "file" not in table.columns:
    raise ReviewError(f"{path}: the suggestions file lacks the column 'file' (mlc-suggest writes "
                      "file,rank,score,unsure_labels,model_labels)")
  queue, skipped = [], []
  for number, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
    file = os.path.abspath(row["file"].strip())
    if not os.path.isfile(file):
      skipped.append(f"line {number}: photo {row['file']!r} does not exist")
    else:
      queue.append(QueuedPhoto(file, tuple(row.get("unsure_labels", "").split()),
                               tuple(row.get("model_labels", "").split())))
  return queue, skipped


def _queue_and_additions(state: ReviewState, suggestions_path: str,
                         additions_path: str | None) -> None:
  """Loads the "tag next" queue into ``state`` and settles its additions file: by default
  additions.csv in the queued photos' common folder; every photo must lie under its folder."""
  state.queue, state.skipped_queue = read_suggestions(suggestions_path)
  if not state.queue:
    raise ReviewError(f"the suggestions file {suggestions_path} names no photo that exists"
                      f"{': ' + state.skipped_queue[0] if state.skipped_queue else ''}")
  if not additions_path:
    additions_path = os.path.join(
        os.path.commonpath([os.path.dirname(photo.file) for photo in state.queue]), "additions.csv")
  folder = os.path.dirname(os.path.abspath(additions_path))
  outside = [p.file for p in state.queue if os.path.commonpath([folder, p.file]) != folder]
  if outside:
    raise ReviewError(f"photo {outside[0]} is not under {folder}, the additions file's folder: "
                      "its rows name photos relative to it (put --additions in the photos' "
                      "folder or above it)")
  state.additions_path = additions_path
  corrections_lib.remove_abandoned_temporaries(additions_path)


def read_suspects(path: str, frame: pd.DataFrame) -> tuple[list[Suspect], list[str]]:
  """Reads mlc-suspects' CSV (or any CSV with image_id,label,action): its rows of this corpus, and
  the others, named."""
  try:
    table = pd.read_csv(path, dtype={"image_id": str, "label": str, "action": str})
  except (OSError, ValueError) as error:
    raise ReviewError(f"cannot read the suspects file {path}: {error}") from None
  missing = [column for column in SUSPECT_COLUMNS if column not in table.columns]
  if missing:
    raise ReviewError(f"{path}: the suspects file lacks column(s) {missing} (mlc-suspects writes "
                      f"{','.join(SUSPECT_COLUMNS)},...)")
  labels = set(corpus_lib.label_columns(frame))
  suspects, skipped = [], []
  for number, row in enumerate(table.itertuples(index=False), start=2):  # line 1 is the header
    image_id, label, action = (str(getattr(row, column)).strip() for column in SUSPECT_COLUMNS)
    if corrections_lib.image_key(image_id) not in frame.index:
      skipped.append(f"line {number}: image {image_id!r} is not in the corpus")
    elif label not in labels:
      skipped.append(f"line {number}: label {label!r} is not in the corpus")
    elif action not in corrections_lib.ACTIONS:
      skipped.append(f"line {number}: action {action!r} is not one of {corrections_lib.ACTIONS}")
    else:
      suspects.append(
          Suspect(corrections_lib.image_key(image_id), label, action, _number(row, "probability"),
                  _number(row, "threshold")))
  return suspects, skipped


def _number(row, column: str) -> float | None:
  value = getattr(row, column, None)
  try:
    return None if value is None or pd.isna(value) else float(value)
  except (TypeError, ValueError):
    return None


def _same_file(path: str, other: str) -> bool:
  """Tells whether two paths name one file: through links (symbolic or hard) too."""
  if os.path.exists(path) and os.path.exists(other):
    return os.path.samefile(path, other)
  return os.path.realpath(path) == os.path.realpath(other)


def load_state(data_dir: str, corrections_path: str, model_path: str | None = None,
               suspects_path: str | None = None, batch_size: int = 64,
               suggestions_path: str | None = None,
               additions_path: str | None = None) -> ReviewState:
  """Loads the corpus (folder layout, audited), the model and its predictions on every image, the
  suspects.

  Args:
    data_dir: the corpus folder (images/ + annotations/).
    corrections_path: the corrections CSV the review writes (created if absent).
    model_path: a model to predict every image with (``tagger.load_tagger``); none by default.
    suspects_path: mlc-suspects' CSV to review; none by default.
    batch_size: images per prediction batch.
    suggestions_path: mlc-suggest's CSV, the "tag next" queue; none by default.
    additions_path: the additions file the queue's tags go to (created if absent); by default
      additions.csv in the queued photos' common folder.

  Returns:
    The ``ReviewState``.

  Raises:
    corpus.CorpusError: the corpus cannot be used.
    ReviewError: the suspects or suggestions file cannot be used, the corrections file's folder
      does not exist, or a queued photo lies outside the additions file's folder.
    FileNotFoundError, ValueError: no model at ``model_path``.
  """
  folder = os.path.dirname(os.path.abspath(corrections_path))
  if not os.path.isdir(folder):
    raise ReviewError(f"the corrections file's folder {folder} does not exist")
  if os.path.isdir(corrections_path):
    raise ReviewError(
        f"the corrections file {corrections_path} is a directory; "
        "name a CSV file (created if absent)")
  corrections_lib.remove_abandoned_temporaries(corrections_path)
  if suspects_path and _same_file(suspects_path, corrections_path):
    raise ReviewError(
        "the decisions need a corrections file of their own: written into the suspects file, "
        "every suspect left undecided would be applied as a correction")
  frame, _ = corpus_lib.load_corpus(data_dir)
  state = ReviewState(data_dir, frame, corrections_path, suspects_path=suspects_path)
  if model_path:
    state.tagger = tagger_lib.load_tagger(model_path)
    state.predictions = state.tagger.predict_corpus(frame, batch_size)
  if suspects_path:
    state.suspects, state.skipped_suspects = read_suspects(suspects_path, frame)
  if suggestions_path:
    _queue_and_additions(state, suggestions_path, additions_path)
  return state


def ranked_images(state: ReviewState, labels: pd.DataFrame, show: str,
                  label: str | None) -> list[int]:
  """Returns the image ids the browse grid shows, in order.

  ``show``: "all"; "labelled" / "predicted" (images with ``label``, as given
  or corrected / as the model decides); "false_positives" (the model decides
  ``label``, the labels lack it; most confident first); "false_negatives"
  (the labels have it, the model does not decide it; least confident first).
  """
  if show == "all" or not label:
    return list(labels.index)
  if show == "labelled":
    return list(labels.index[labels[label] == 1])
  predictions = state.predictions
  if predictions is None or f"prob_{label}" not in predictions:
    return []
  decided = predictions[f"decided_{label}"] == 1
  given = labels[label].reindex(predictions.index).fillna(0).to_numpy() == 1
  probability = predictions[f"prob_{label}"]
  if show == "predicted":
    chosen, descending = decided.to_numpy(), True
  elif show == "false_positives":
    chosen, descending = decided.to_numpy() & ~given, True
  elif show == "false_negatives":
    chosen, descending = ~decided.to_numpy() & given, False
  else:
    raise ValueError(f"unknown view {show!r}")
  picked = probability[chosen].sort_values(ascending=not descending, kind="stable")
  return [int(i) for i in picked.index]


def first_undecided(state: ReviewState, corrections: Corrections, start: int = 0) -> int | None:
  """Returns the index of the first undecided suspect at or after ``start`` (then from the top),
  None when all are."""
  order = list(range(start, len(state.suspects))) + list(range(min(start, len(state.suspects))))
  return next((i for i in order if state.suspect_decision(state.suspects[i], corrections) is None),
              None)
