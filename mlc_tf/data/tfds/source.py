"""The ``tfds:<name>[:<version>][:<split>]`` data source.

It gives TFDS records in mlc_tf's one element structure.

Without a split, the dataset's own ``train``/``validation``/``test`` splits
are the three parts (a missing validation or test part is carved out of
train, stratified, by the configured fractions). With one (any TFDS split
expression: ``train``, ``train+validation``, ``train[:80%]``), those records
are the whole corpus, split as ``config.data`` says, like a folder.

Labels: mlc_tf's ``MultiHotLabels``, else the labels of an ``objects``
sequence (detection datasets such as ``voc/2007``), else a sequence of
``ClassLabel`` named ``labels``, else a single ``ClassLabel`` ``label``.
Image ids: the first of ``ID_FEATURES`` the dataset has, else TFDS' own
per-record ``tfds_id``. Images are streamed as encoded bytes (TFDS'
``SkipDecoding``), so ``pipeline.decode_and_resize`` decodes them exactly as
it decodes files.
"""

from __future__ import annotations

import functools
import os
import re

import ml_collections
import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import source_base, stratification
from mlc_tf.data.tfds import builders
from mlc_tf.data.tfds.features import MultiHotLabels

CorpusError = corpus_lib.CorpusError
ID_FEATURES = ("image_id", "image/filename", "id", "filename", "file_name")
_SPEC = re.compile(r"(?P<name>[^:\[\]]+?)(?::(?P<version>\d+\.\d+\.\d+))?(?::(?P<split>.+))?")


def parse_spec(rest: str) -> tuple[str, str | None, str | None]:
  """Parses ``<name>[:<version>][:<split>]`` into (name, version or None, split or None)."""
  match = _SPEC.fullmatch(rest)
  if not match:
    raise CorpusError(f"bad data source tfds:{rest}: expected tfds:<name>[:<version>][:<split>]")
  return match["name"], match["version"], match["split"]


def open_tfds(spec: str, rest: str, data: ml_collections.ConfigDict) -> TfdsSource:
  """Opens ``tfds:<rest>``, preparing the records first if they are not there yet."""
  name, version, split = parse_spec(rest)
  builder = make_builder(name, version, data)
  prepare(builder, data.get("tfds_manual_dir"))
  return TfdsSource(spec, builder, split, data.get("labels"))


def make_builder(name: str, version: str | None,
                 data: ml_collections.ConfigDict) -> tfds.core.DatasetBuilder:
  """Returns the builder for ``name``.

  mlc_tf's own builders get a config made from ``data`` (config.data).
  """
  data_dir = data.get("tfds_data_dir")
  split = dict(val_fraction=data.val_fraction,
               test_fraction=data.test_fraction,
               split_seed=data.split_seed)
  if name == builders.MlcCorpus.name:
    labels = data.get("labels") or _annotation_labels(
        data.get("tfds_manual_dir")) or builders.FLICKR14_LABELS
    return builders.MlcCorpus(config=builders.corpus_config(labels, **split),
                              data_dir=data_dir,
                              version=version)
  if name == builders.MlcDigits.name:
    return builders.MlcDigits(config=builders.digits_config(**split),
                              data_dir=data_dir,
                              version=version)
  try:
    return tfds.builder(f"{name}:{version}" if version else name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as error:
    raise CorpusError(f"tfds:{name}: no such TFDS dataset ({str(error).splitlines()[0]})") from None


def _annotation_labels(manual_dir: str | None) -> list[str]:
  annotations = os.path.join(manual_dir, "annotations") if manual_dir else None
  if not annotations or not tf.io.gfile.isdir(annotations):
    return []
  return sorted(corpus_lib.annotation_files(annotations))


def prepare(builder: tfds.core.DatasetBuilder, manual_dir: str | None) -> None:
  """Writes the builder's records once; later runs read them as they are."""
  if builder.is_prepared():
    return
  if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not manual_dir:
    raise CorpusError(
        f"tfds:{builder.name} is not prepared in {builder.data_dir} and needs the source files: "
        f"set config.data.tfds_manual_dir.\n{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  logging.info("preparing the TFDS records of %s in %s (once)", builder.info.full_name,
               builder.data_dir)
  own = isinstance(builder, (builders.MlcCorpus, builders.MlcDigits))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, try_download_gcs=not own))


def _image_key(features: tfds.features.FeaturesDict) -> str:
  keys = [key for key, feature in features.items() if isinstance(feature, tfds.features.Image)]
  if "image" in keys or len(keys) == 1:
    return "image" if "image" in keys else keys[0]
  raise CorpusError(
      f"expected one image feature, found {keys or 'none'} in {list(features.keys())}")


def _from_indices(indices: tf.Tensor, num_labels: int) -> tf.Tensor:
  indices = tf.cast(tf.reshape(indices, [-1]), tf.int32)
  indices = tf.boolean_mask(indices, indices >= 0)  # -1: ClassLabel's "no label"
  return tf.cast(
      tf.math.bincount(indices, minlength=num_labels, maxlength=num_labels) > 0, tf.uint8)


def label_reader(features: tfds.features.FeaturesDict):
  """Returns (label names, example -> uint8 multi-hot [num_labels]) for TFDS dataset features."""
  keys = list(features.keys())
  labels = features["labels"] if "labels" in keys else None
  if isinstance(labels, MultiHotLabels):
    return labels.names, lambda example: tf.cast(example["labels"], tf.uint8)
  objects = features["objects"] if "objects" in keys else None
  if (isinstance(objects, tfds.features.Sequence) and
      isinstance(objects.feature, tfds.features.FeaturesDict) and
      isinstance(objects.feature["label"] if "label" in objects.feature.keys() else None,
                 tfds.features.ClassLabel)):
    names = objects.feature["label"].names
    return names, lambda example: _from_indices(example["objects"]["label"], len(names))
  if isinstance(labels, tfds.features.Sequence) and isinstance(labels.feature,
                                                               tfds.features.ClassLabel):
    names = labels.feature.names
    return names, lambda example: _from_indices(example["labels"], len(names))
  label = features["label"] if "label" in keys else None
  if isinstance(label, tfds.features.ClassLabel):
    names = label.names
    return names, lambda example: _from_indices(example["label"], len(names))
  raise CorpusError(
      f"no multi-label target among the features {keys}: expected MultiHotLabels `labels`, "
      "`objects` with a ClassLabel `label`, a Sequence of ClassLabel `labels`, or a ClassLabel "
      "`label`")


class TfdsSource(source_base.Source):
  """TFDS records: a label frame read from them once, and their image bytes in stored order."""

  def __init__(self, spec: str, builder: tfds.core.DatasetBuilder, split: str | None,
               labels: list[str] | None):
    features = builder.info.features
    self.builder = builder
    self._image_key = _image_key(features)
    self._id_key = next((key for key in ID_FEATURES if key in features.keys()),
                        None)  # None: tfds_id
    names, to_multi_hot = label_reader(features)
    self._own_parts = split is None
    if split is None:
      available = list(builder.info.splits.keys())
      if "train" not in available:
        raise CorpusError(
            f"{spec}: the dataset has no `train` split (splits: {available or 'unknown'}); "
            f"name the records to use, e.g. {spec}:<split>")
      split_names = [name for name in ("train", "validation", "test") if name in available]
    else:
      split_names = [split]

    ids, targets, self._streams = [], [], []  # streams: (split, first row, end row) in row order
    for name in split_names:
      start = len(ids)
      records = self._examples(name).map(lambda example: (example[self._id_key or "tfds_id"],
                                                         to_multi_hot(example)))
      for id_batch, target_batch in records.batch(4096).as_numpy_iterator():
        ids.extend(i.decode() if isinstance(i, bytes) else int(i) for i in id_batch)
        targets.append(target_batch)
      self._streams.append((name, start, len(ids)))
    if not ids:
      raise CorpusError(f"{spec}: no records in split(s) {split_names}")
    frame = pd.DataFrame(np.concatenate(targets),
                         index=pd.Index(ids, name="image_id"),
                         columns=names,
                         dtype="uint8")
    duplicated = frame.index[frame.index.duplicated()]
    if len(duplicated):
      raise CorpusError(
          f"{spec}: image id {duplicated[0]!r} occurs more than once in {split_names}")
    if labels:
      unknown = sorted(set(labels) - set(names))
      if unknown:
        raise CorpusError(f"{spec}: no label(s) {unknown}; the dataset's labels: {names}")
    frame = frame[sorted(labels or names)]
    audit = corpus_lib.CorpusAudit(
        source=spec,
        num_images=len(frame),
        num_samples=len(frame),
        empty_labels=[label for label in frame.columns if not frame[label].any()])
    super().__init__(spec, frame, audit)

  def _examples(self, split: str) -> tf.data.Dataset:
    read_config = tfds.ReadConfig(add_tfds_id=self._id_key is None, try_autocache=False)
    return self.builder.as_dataset(split=split, shuffle_files=False, read_config=read_config,
                                    decoders={self._image_key: tfds.decode.SkipDecoding()})

  def split(self, val_fraction, test_fraction, seed):
    """Returns the dataset's own train/validation/test parts when no split was named.

    Missing parts are carved out of train.
    """
    if not self._own_parts:
      return super().split(val_fraction, test_fraction, seed)
    parts = {name: np.arange(start, end) for name, start, end in self._streams}
    train, val, test = parts["train"], parts.get("validation"), parts.get("test")
    targets = self.frame[self.label_names].to_numpy()[train]
    logging.info("%s: using the dataset's own split(s) %s", self.spec, sorted(parts))
    if val is None and test is None:
      kept, val_rows, test_rows = stratification.train_val_test_split(targets, val_fraction,
                                                                      test_fraction, seed)
      return train[kept], train[val_rows], train[test_rows]
    if val is None:
      kept, val_rows, _ = stratification.train_val_test_split(targets, val_fraction, 0.0, seed)
      return train[kept], train[val_rows], test
    if test is None and test_fraction > 0:
      kept, test_rows, _ = stratification.train_val_test_split(targets, test_fraction, 0.0,
                                                               seed)  # carve test like val
      return train[kept], val, train[test_rows]
    return train, val, test if test is not None else train[:0]

  def images(self, frame: pd.DataFrame) -> tf.data.Dataset:
    """Returns the encoded image bytes of ``frame``'s rows.

    The rows must follow the source frame's (stored) order.
    """
    rows = self.frame.index.get_indexer(frame.index)
    if (rows < 0).any():
      raise ValueError(f"{self.spec}: {int((rows < 0).sum())} row(s) are not in this source")
    if (np.diff(rows) <= 0).any():
      raise ValueError(
          f"{self.spec}: TFDS records stream in stored order; select the rows of the source's "
          "frame in that order (e.g. frame.iloc[sorted positions])")
    pieces = []
    for split, start, end in self._streams:
      inside = rows[(rows >= start) & (rows < end)] - start
      if len(inside):
        keep = np.zeros(end - start, bool)
        keep[inside] = True
        pieces.append(self._stream(split, self.frame.index[start:end],
                                   None if keep.all() else keep))
    images = functools.reduce(tf.data.Dataset.concatenate, pieces)
    # Sharding by record file across workers would break the row order that the labels and id checks
    # rely on.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return images.apply(tf.data.experimental.assert_cardinality(len(frame))).with_options(options)

  def _stream(self, split: str, ids: pd.Index, keep: np.ndarray | None) -> tf.data.Dataset:
    """Streams a split's encoded images, only where ``keep`` is set.

    Each is checked against the id the frame expects.
    """
    expected = tf.constant(np.asarray(list(ids)))
    id_key = self._id_key or "tfds_id"

    def kept(position, example):
      del example
      return keep[position]

    def checked_image(position, example):
      image_id = example[id_key]
      if expected.dtype != tf.string:
        image_id = tf.cast(image_id, expected.dtype)
      check = tf.debugging.assert_equal(image_id,
                                        expected[position],
                                        message="TFDS records changed since the "
                                        "source was opened: a streamed image id is not the frame's")
      with tf.control_dependencies([check]):
        return tf.identity(example[self._image_key])

    records = self._examples(split).enumerate()
    if keep is not None:
      keep = tf.constant(keep)
      records = records.filter(kept)
    return records.map(checked_image, num_parallel_calls=tf.data.AUTOTUNE)
