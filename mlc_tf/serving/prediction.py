"""Tagging new images with a trained model: files in, one CSV row per image out, in bounded memory.

Three kinds of model are accepted: the ``model.keras`` training writes (images
are decoded by the same ``decode_and_resize`` as in training), an exported
SavedModel (its ``serving_default`` signature is fed the encoded bytes, so the
exported graph's own preprocessing runs) and a LiteRT or ONNX file (``portable``:
decoded by ``decode_and_resize`` here, its runtime fed uint8 pixels). Images
stream through in batches and rows are written as they come, so a folder of
any size fits in memory, into a hidden file beside the output renamed over it
at the end: a killed run leaves the old output whole. A file that is not a
readable image is skipped, counted and named, never fatal; a run that tags no
image at all is an error.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import glob
import os
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from mlc_tf import atomic_files
from mlc_tf.data import image_formats, pipeline
from mlc_tf.models import inference
from mlc_tf.serving import models_config, portable, signatures


def list_images(sources: list[str]) -> list[str]:
  """Lists the image files of folders (not recursive) and glob patterns.

  They are sorted per source, without repeats. A glob keeps what the folder
  form keeps: every match but a folder whose name is no image's, so a dangling
  link or a folder named ``x.jpg`` is listed, to be skipped with its reason.
  """
  found: dict[str, None] = {}
  for source in sources:
    if os.path.isdir(source):
      matches = [os.path.join(source, name) for name in sorted(os.listdir(source))
                 if name.lower().endswith(image_formats.EXTENSIONS)]
    else:
      matches = sorted(path for path in expand_glob(source) if not os.path.isdir(path)
                       or path.lower().endswith(image_formats.EXTENSIONS))
    if not matches:
      raise FileNotFoundError(
          f"no image file found at {source!r} (a folder of .jpg/.png/.gif/.bmp or a glob)")
    found.update(dict.fromkeys(matches))
  return list(found)


def expand_glob(pattern: str) -> list[str]:
  """The paths ``pattern`` matches, as ``glob.glob(pattern, recursive=True)``, but ``**`` enters
  each real folder once.

  glob follows symbolic links to folders: a link back up (``d/sub/up -> ..``)
  makes it list one photo once per level until the path is too long, and two
  such links never end. Hidden names match only a pattern part starting with ``.``, as in glob.
  """
  if not glob.has_magic(pattern):
    return [pattern] if os.path.lexists(pattern) else []
  anchor, parts = ("/", pattern.lstrip("/").split("/")) if pattern.startswith("/") else (
      "", pattern.split("/"))
  found: dict[str, None] = {}
  entered: set[tuple[str, int]] = set()

  def walk(folder: str, rest: list[str]) -> None:
    part, rest = rest[0], rest[1:]
    here = folder or "."
    if part == "**":
      place = (os.path.realpath(here), len(rest))  # this folder, at this point of the pattern
      if place in entered:
        return
      entered.add(place)
      if rest:
        walk(folder, rest)
      for name in _names(here, "*"):
        path = os.path.join(folder, name)
        if not rest:
          found[path] = None
        if os.path.isdir(path):
          walk(path, [part, *rest])
      return
    names = _names(here, part) if glob.has_magic(part) else (
        [part] if os.path.lexists(os.path.join(here, part)) else [])
    for name in names:
      path = os.path.join(folder, name)
      if not rest:
        found[path] = None
      elif os.path.isdir(path):
        walk(path, rest)

  walk(anchor, [part for part in parts if part] or ["*"])
  return list(found)


def _names(folder: str, part: str) -> list[str]:
  """The names in ``folder`` that ``part`` (one component of a glob) matches, sorted."""
  try:
    names = sorted(os.listdir(folder))
  except OSError:
    return []
  if not part.startswith("."):
    names = [name for name in names if not name.startswith(".")]
  return fnmatch.filter(names, part)


def non_image_files(sources: list[str]) -> list[str]:
  """Returns the files of the folders among ``sources`` that ``list_images`` leaves out.

  Their names are no image's.
  """
  return [
      os.path.join(source, name) for source in sources if os.path.isdir(source)
      for name in sorted(os.listdir(source)) if os.path.isfile(os.path.join(source, name)) and
      not name.lower().endswith(image_formats.EXTENSIONS)
  ]


def regular_files(paths: list[str]) -> list[str]:
  """``paths`` without those that are no regular file: reading a FIFO would block the run. The
  caller counts them among the skipped (``corpus.check_image`` says why)."""
  return [path for path in paths if not image_formats.not_a_regular_file(path)]


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
  for start in range(0, len(items), size):
    yield items[start:start + size]


class KerasPredictor:
  """A ``model.keras`` inference model; decoding through tf.data, errors dropped per image."""

  def __init__(self, model: keras.Model):
    self.model = model
    layer = inference.decision_layer(model)
    self.label_names = list(layer.label_names)
    self.image_size = int(model.inputs[0].shape[1])

  def predict(self, paths: list[str],
              batch_size: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Yields (paths, probabilities [B, L], decisions [B, L]) for the readable images, in order."""
    for batch_paths, images in decoded_batches(paths, self.image_size, batch_size):
      outputs = self.model.predict_on_batch(images)
      yield batch_paths, np.asarray(outputs["probabilities"]), np.asarray(outputs["decisions"])


def probabilities_and_features(model: keras.Model, paths: list[str], batch_size: int
                               ) -> tuple[list[str], np.ndarray, np.ndarray]:
  """Returns (the paths of the readable images, probabilities [N, L], pooled features [N, F]) of
  an inference model (``inference.with_features``); unreadable files are left out, as here."""
  both = inference.with_features(model)
  kept, probabilities, features = [], [], []
  for batch_paths, images in decoded_batches(paths, int(model.inputs[0].shape[1]), batch_size):
    out = both.predict_on_batch(images)
    kept += batch_paths
    probabilities.append(np.asarray(out["probabilities"]))
    features.append(np.asarray(out["features"]).reshape(len(batch_paths), -1))
  if not kept:
    return [], np.zeros((0, 0)), np.zeros((0, 0))
  return kept, np.concatenate(probabilities), np.concatenate(features)


class PortablePredictor:
  """A LiteRT (.tflite) or ONNX (.onnx) file of ``mlc-export --format``: the images decoded and
  resized here, as for ``KerasPredictor``, and sent to the file's runtime as uint8 pixels."""

  def __init__(self, path: str):
    self.runtime = portable.Runtime(path)
    self.label_names = self.runtime.label_names

  def predict(self, paths: list[str],
              batch_size: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Yields (paths, probabilities [B, L], decisions [B, L]) for the readable images, in order."""
    for batch_paths, images in decoded_batches(paths, self.runtime.image_size, batch_size,
                                               self.runtime.metadata["max_image_pixels"]):
      probabilities, decisions = self.runtime(images.numpy().astype(np.uint8))
      yield batch_paths, probabilities, decisions


def decoded_batches(paths: list[str], image_size: int, batch_size: int,
                    max_image_pixels: int = image_formats.MAX_IMAGE_PIXELS
                    ) -> Iterator[tuple[list[str], tf.Tensor]]:
  """Yields (paths, float32 pixels [B, S, S, 3] from ``decode_and_resize``) for the regular files
  it can read and decode, in order; the others are dropped."""
  paths = regular_files(paths)
  if not paths:
    return
  ds = tf.data.Dataset.from_tensor_slices(np.asarray(paths, dtype=str))
  ds = ds.map(lambda path: (path, pipeline.decode_and_resize(tf.io.read_file(path), image_size,
                                                             max_image_pixels)),
              num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  ds = ds.ignore_errors().batch(batch_size).prefetch(
      tf.data.AUTOTUNE)  # the path travels with its image
  for batch_paths, images in ds:
    yield [p.decode() for p in batch_paths.numpy()], images


class SavedModelPredictor:
  """An exported SavedModel, called through ``serving_default`` with encoded image bytes."""

  def __init__(self, export_dir: str):
    self.loaded = tf.saved_model.load(export_dir)
    if signatures.METADATA not in self.loaded.signatures:  # what the probability columns mean
      raise ValueError(f"{export_dir} has no {signatures.METADATA!r} signature naming its labels: "
                       "not a model mlc_tf exported (mlc-export)")
    self.serve = self.loaded.signatures[signatures.SERVING]
    names = self.loaded.signatures[signatures.METADATA]()["label_names"].numpy()
    self.label_names = [name.decode() for name in names]

  def _call(self, blobs: list[bytes]) -> dict:
    outputs = self.serve(image_bytes=tf.constant(blobs, tf.string))
    return {k: v.numpy() for k, v in outputs.items()}

  def predict(self, paths: list[str],
              batch_size: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Yields (paths, probabilities, decisions) for the images the model accepts, in order."""
    for chunk in _batches(regular_files(paths), batch_size):
      readable = []
      for path in chunk:
        try:
          with open(path, "rb") as f:
            readable.append((path, f.read()))
        except OSError:
          continue
      try:
        answers = [(readable, self._call([blob for _, blob in readable]))] if readable else []
      # One bad image fails the whole batch: find it, keep the rest.
      except tf.errors.InvalidArgumentError:
        answers = []
        for item in readable:
          try:
            answers.append(([item], self._call([item[1]])))
          except tf.errors.InvalidArgumentError:
            continue
      for items, out in answers:
        valid = out["valid"].astype(bool) if "valid" in out else np.ones(len(items), bool)
        yield ([path for (path, _), ok in zip(items, valid) if ok], out["probabilities"][valid],
               out["decisions"][valid])


def load_predictor(path: str) -> KerasPredictor | SavedModelPredictor | PortablePredictor:
  """Loads a predictor for ``path``.

  ``path`` is a SavedModel dir, a TF Serving model dir (its highest version), a .keras file, a
  training workdir holding model.keras, or a .tflite / .onnx file of ``mlc-export --format``.
  """
  if path.lower().endswith(tuple(portable.FORMATS.values())):
    return PortablePredictor(path)
  export_dir = saved_model_dir(path)
  if export_dir:
    return SavedModelPredictor(export_dir)
  return KerasPredictor(inference.load(path))


def saved_model_dir(path: str) -> str | None:
  """Returns the SavedModel ``path`` names: itself, or a TF Serving model dir's highest version.

  None if neither.

  Through ``tf.io.gfile``, so ``gs://`` and the other file systems TensorFlow has work as local
  paths do.
  """
  if not tf.io.gfile.isdir(path):
    return None
  if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    return path
  versions = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
  versions = [name for name in versions if models_config.is_version(name) and
              tf.io.gfile.exists(os.path.join(path, name, "saved_model.pb"))]
  return os.path.join(path, max(versions, key=int)) if versions else None


def csv_columns(label_names: list[str], probabilities: bool) -> list[str]:
  """Returns the CSV's header: ``file``, a column per label and, on request, ``prob_<label>`` ones.

  Local and Beam prediction (``batch_prediction``) both write through this and :func:`csv_row`.
  """
  return [
      "file", *label_names, *([f"prob_{name}" for name in label_names] if probabilities else [])
  ]


# A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
  """``cell``, with a single quote before it where a spreadsheet would run it as a formula
  (``=HYPERLINK(…).jpg``, a file named by whoever supplied the photos): OWASP's escape."""
  return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def csv_row(path: str, probs: np.ndarray, decisions: np.ndarray, probabilities: bool) -> list:
  """Returns one image's CSV row under :func:`csv_columns`.

  That is its path (``spreadsheet_safe``), 0/1 decisions and probabilities to 6 decimals.
  """
  return [spreadsheet_safe(path), *map(int, decisions),
          *([f"{x:.6f}" for x in probs] if probabilities else [])]


@dataclasses.dataclass
class PredictionSummary:
  written: int
  skipped: list[str]  # input files that were not readable images


def predict_to_csv(predictor: KerasPredictor | SavedModelPredictor | PortablePredictor,
                   paths: list[str], output: str, batch_size: int = 64,
                   probabilities: bool = False) -> PredictionSummary:
  """Writes ``output``: ``file``, one 0/1 column per label and, on request, ``prob_<label>`` ones.

  Args:
    predictor: the model to ask.
    paths: image files, in the order of the rows.
    output: the CSV file to write.
    batch_size: images per prediction batch.
    probabilities: also write ``prob_<label>`` columns.

  Returns:
    How many rows were written, and the files skipped as not readable images.

  Raises:
    ValueError: ``output`` is a directory or lies under a file; no file of ``paths`` is a readable
      image (``output`` is then left as it was).
  """
  if os.path.isdir(output):
    raise ValueError(f"the output {output} is a directory; name the CSV file to write")
  parent = os.path.dirname(os.path.abspath(output))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise ValueError(f"the output {output} lies under {parent}, which is a file, not a folder")
  done = set()

  def write(staged: str) -> None:
    with open(staged, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(csv_columns(predictor.label_names, probabilities))
      for batch_paths, probs, decisions in predictor.predict(paths, batch_size):
        for path, p, d in zip(batch_paths, probs, decisions):
          writer.writerow(csv_row(path, p, d, probabilities))
          done.add(path)
    if not done:
      raise ValueError(
          f"none of the {len(paths)} file(s) is an image the model can read "
          f"({', '.join(paths[:5])}{' …' if len(paths) > 5 else ''}); {output} was not written")

  atomic_files.write_aside(output, write)
  return PredictionSummary(len(done), [path for path in paths if path not in done])
