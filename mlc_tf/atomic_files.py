"""Files that appear whole or not at all: written aside under a hidden name, then renamed into
place.

The one home of that step, for everything a reader may look at while it is
written: ``model.keras``, epoch checkpoints, the backup's ``state`` link,
exported model versions, reports (``report.json``, ``config.json``, the
markdown beside them), the corrections file and the demo corpus. A rename within one filesystem is
atomic, so a reader (a resumed run, TF Serving) sees the old file or the new one, never half of one.
Like ``config``, a leaf module every package may import.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from typing import Callable, Iterator

import tensorflow as tf


@contextlib.contextmanager
def staged_beside(path: str) -> Iterator[str]:
  """Yields a hidden path next to ``path`` to write a file, a directory or a link to; whatever is
  left there is removed.

  The name ends with ``path``'s own (Keras picks the format from the suffix:
  ``.keras``, ``.weights.h5``) and holds the writer's process id and a
  random part, so concurrent writers do not collide; a process killed
  mid-write leaves only a hidden leftover, which ``remove_abandoned`` removes.
  """
  directory, name = os.path.split(path)
  staged = os.path.join(directory, f".staging-{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}")
  try:
    yield staged
  finally:
    if os.path.islink(staged):
      os.remove(staged)
    elif tf.io.gfile.isdir(staged):
      tf.io.gfile.rmtree(staged)
    elif tf.io.gfile.exists(staged):
      tf.io.gfile.remove(staged)


_STAGED_NAME = re.compile(r"^\.staging-(\d+)-[0-9a-f]{12}-")


def remove_abandoned(directory: str) -> list[str]:
  """Removes what ``staged_beside`` left in a local ``directory`` for writers no longer running;
  returns it.

  A writer is known by the process id in the name, on this machine: a
  folder written by processes of several machines keeps the leftovers of the others.
  """
  removed = []
  for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
    match = _STAGED_NAME.match(name)
    if match and not _is_running(int(match.group(1))):
      path = os.path.join(directory, name)
      if os.path.isdir(path) and not os.path.islink(path):
        tf.io.gfile.rmtree(path)
      else:
        os.remove(path)
      removed.append(path)
  return removed


def _is_running(pid: int) -> bool:
  try:
    os.kill(pid, 0)  # signal 0: only asks whether the process exists
  except ProcessLookupError:
    return False
  except PermissionError:  # it exists, under another user
    return True
  return True


def write_aside(path: str, write: Callable[[str], None]) -> str:
  """Calls ``write(staged)`` with a path beside ``path``, then renames ``staged`` onto ``path``;
  returns ``path``.

  An existing ``path`` is replaced only once the new one is complete; if
  ``write`` fails, ``path`` is left as it was.
  """
  tf.io.gfile.makedirs(os.path.dirname(path) or ".")
  with staged_beside(path) as staged:
    write(staged)
    tf.io.gfile.rename(staged, path, overwrite=True)
  return path


def write_text(path: str, text: str) -> str:
  """Writes ``text`` into ``path`` whole or not at all: synced before the rename, an existing
  file's mode kept."""
  def write(staged: str) -> None:
    with open(staged, "w", newline="") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    if os.path.exists(path):
      shutil.copymode(path, staged)
  return write_aside(path, write)


def write_json(path: str, value) -> str:
  """Writes ``value`` as indented JSON into ``path``, atomically (``write_text``)."""
  return write_text(path, json.dumps(value, indent=2))


def write_report(directory: str, name: str, markdown: str, value) -> list[str]:
  """Writes ``<name>.md`` and ``<name>.json`` in ``directory``, each atomically; returns their
  paths.

  The markdown (``markdown``, a newline added) and the JSON (``value``) of one
  report: evaluation, cross-validation, growing and exploration all write so.
  """
  return [write_text(os.path.join(directory, f"{name}.md"), markdown + "\n"),
          write_json(os.path.join(directory, f"{name}.json"), value)]
