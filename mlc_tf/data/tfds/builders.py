"""TFDS builders: a corpus folder (``mlc_corpus``) and the built-in demo corpus (``mlc_digits``).

Both write the same features: ``image`` (a 3-channel JPEG), ``labels`` (multi-hot,
the label names in the feature info) and ``image_id`` (the ``<ID>`` of
``images/im<ID>.jpg``), with train/validation/test splits made by the same
iterative stratification training uses, from the fractions and seed in the
builder config. The data source ``tfds:mlc_corpus`` makes that config from
``config.data``, so its splits are the ones ``folder:`` gives the same corpus.

  builder = MlcCorpus(config=corpus_config(FLICKR14_LABELS), data_dir="/tmp/tfds")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir="../shared/datasets/flickr14", try_download_gcs=False))
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from mlc_tf.data import builtin, stratification
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data.flickr14 import FLICKR14_LABELS
from mlc_tf.data.tfds.features import MultiHotLabels

JPEG_QUALITY = 95  # for the few images that are not 3-channel JPEGs already


@dataclasses.dataclass(eq=False)
class CorpusConfig(tfds.core.BuilderConfig):
  """Which labels to keep and how to split: the fields of ``config.data`` that shape the records."""

  label_names: tuple[str, ...] = ()
  val_fraction: float = 0.15
  test_fraction: float = 0.15
  split_seed: int = 0


@dataclasses.dataclass(eq=False)
class DigitsConfig(CorpusConfig):
  """The demo corpus' generator settings (``mlc_tf.data.builtin``), plus the split."""

  label_names: tuple[str, ...] = tuple(sorted(builtin.LABELS))
  num_images: int = 1500
  seed: int = 0


def rgb_jpeg(data: bytes) -> bytes:
  """Returns the encoded image as a 3-channel JPEG.

  A 3-channel JPEG is kept byte for byte, so records decode to exactly the
  pixels the folder gives; anything else (grayscale or CMYK JPEG, PNG, GIF,
  BMP) is decoded the way training decodes and re-encoded. Raises
  ``tf.errors.InvalidArgumentError`` for bytes that are not a decodable image.
  """
  image = tf.io.decode_image(data, channels=3, expand_animations=False)
  if bool(tf.io.is_jpeg(data)) and int(tf.io.extract_jpeg_shape(data)[2]) == 3:
    return data
  return tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy()


def _config_name(fields: dict) -> str:
  parts = []
  for key, value in sorted(fields.items()):
    if key == "label_names":
      digest = hashlib.sha1(",".join(value).encode()).hexdigest()[:8]
      parts.append(f"{len(value)}labels_{digest}")
    else:
      parts.append(f"{key}{value}")
  return "-".join(parts)


def _config(builder_cls, **fields) -> CorpusConfig:
  """The builder's predefined config with these field values, else a new one named after them."""
  if "label_names" in fields:
    fields["label_names"] = tuple(sorted(fields["label_names"]))
  for config in builder_cls.BUILDER_CONFIGS:
    if all(getattr(config, key) == value for key, value in fields.items()):
      return config
  config_cls = type(builder_cls.BUILDER_CONFIGS[0])
  return config_cls(name=_config_name(fields),
                    description="Made from mlc_tf's config.data.",
                    **fields)


def corpus_config(label_names, val_fraction=0.15, test_fraction=0.15, split_seed=0) -> CorpusConfig:
  return _config(MlcCorpus,
                 label_names=label_names,
                 val_fraction=val_fraction,
                 test_fraction=test_fraction,
                 split_seed=split_seed)


def digits_config(val_fraction=0.15,
                  test_fraction=0.15,
                  split_seed=0,
                  num_images=1500,
                  seed=0) -> DigitsConfig:
  """Returns the ``mlc_digits`` builder config with these settings.

  A predefined config with the same values is reused; otherwise a new one is named after them.

  Args:
    val_fraction: share of the images in the validation split.
    test_fraction: share of the images in the test split.
    split_seed: seed of the stratified split.
    num_images: how many scenes the generator makes.
    seed: seed of the generator (``mlc_tf.data.builtin``).

  Returns:
    The ``DigitsConfig``.
  """
  return _config(MlcDigits,
                 val_fraction=val_fraction,
                 test_fraction=test_fraction,
                 split_seed=split_seed,
                 num_images=num_images,
                 seed=seed)


class _LayoutBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Records of a corpus folder (images/ + annotations/), split as the builder config says."""

  VERSION = tfds.core.Version("1.0.0")

  @abc.abstractmethod
  def _corpus_root(self, dl_manager: tfds.download.DownloadManager) -> str:
    """The corpus folder to read."""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "image":
                tfds.features.Image(
                    shape=(None, None, 3),
                    encoding_format="jpeg",
                    doc="3-channel JPEG; 3-channel JPEG files are stored unchanged"),
            "labels":
                MultiHotLabels(sorted(self.builder_config.label_names),
                               doc="1 where the label's annotation file lists the image"),
            "image_id":
                tfds.features.Scalar(np.int64, doc="<ID> of images/im<ID>.jpg"),
        }),
        supervised_keys=("image", "labels"),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    root = self._corpus_root(dl_manager)
    # The data audit decodes every image once and leaves out (and names) the undecodable ones.
    frame, audit = corpus_lib.load_corpus(root, list(config.label_names))
    for line in audit.warnings():
      logging.warning("%s: %s", root, line)
    reencode = set()  # ids
    for image_id, path in frame[corpus_lib.PATH_COLUMN].items():
      data = _read(path)
      if rgb_jpeg(data) != data:
        reencode.add(image_id)
    self.info.metadata.update(
        corpus_warnings=audit.warnings(),
        skipped_images={
            os.path.basename(path): why for path, why in audit.undecodable_images
        },
        reencoded_images=len(reencode))
    labels = corpus_lib.label_columns(frame)
    train, val, test = stratification.train_val_test_split(frame[labels].to_numpy(),
                                                           config.val_fraction,
                                                           config.test_fraction, config.split_seed)
    parts = {"train": train, "validation": val, "test": test}
    return {
        name: self._generate_examples(frame.iloc[rows], reencode)
        for name, rows in parts.items()
        if len(rows)
    }

  def _generate_examples(self, frame: pd.DataFrame, reencode: set):
    labels = corpus_lib.label_columns(frame)
    for image_id, path, targets in zip(frame.index, frame[corpus_lib.PATH_COLUMN],
                                       frame[labels].to_numpy()):
      data = _read(path)
      yield int(image_id), {"image": rgb_jpeg(data) if image_id in reencode else data,
                            "labels": targets.astype(np.uint8), "image_id": int(image_id)}


def _read(path: str) -> bytes:
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


class MlcCorpus(_LayoutBuilder):
  """A multi-label image corpus folder: images/im<ID>.jpg + annotations/<label>.txt.

  The default config holds the flickr14 corpus's 14 labels; mlc_tf's ``tfds:mlc_corpus``
  source makes a config from ``config.data`` (labels, split fractions and seed).
  """

  RELEASE_NOTES = {
      "1.0.0": "Initial release: 3-channel JPEG, multi-hot labels with names, image id; "
               "stratified train/validation/test splits from the builder config.",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Point manual_dir at the corpus folder itself, which holds
    images/im<ID>.jpg          one image per id (JPEG, or PNG/GIF/BMP content; grayscale is fine)
    annotations/<label>.txt    one image id per line: the images that carry <label>
  e.g. mlc-train --config.data.source=tfds:mlc_corpus --config.data.tfds_manual_dir=<folder>.
  """
  BUILDER_CONFIGS = [
      CorpusConfig(name="flickr14", label_names=FLICKR14_LABELS,
                   description="The flickr14 corpus's 14 labels; 70/15/15 split, seed 0."),
  ]

  def _corpus_root(self, dl_manager):
    return os.fspath(dl_manager.manual_dir)


class MlcDigits(_LayoutBuilder):
  """mlc_tf's built-in demo corpus: multi-label scenes of scikit-learn's digits, generated offline.

  Labels "zero" ... "five"; see ``mlc_tf.data.builtin`` for how the scenes are made.
  """

  RELEASE_NOTES = {
      "1.0.0": f"Initial release: generator version {builtin.VERSION} of mlc_tf.data.builtin; "
               "stratified train/validation/test splits from the builder config.",
  }
  BUILDER_CONFIGS = [
      DigitsConfig(name="default", description="1,500 images, seed 0; 70/15/15 split, seed 0.")
  ]

  def _corpus_root(self, dl_manager):
    config = self.builder_config
    return builtin.ensure_demo_corpus(os.fspath(dl_manager.download_dir),
                                      num_images=config.num_images,
                                      seed=config.seed)
