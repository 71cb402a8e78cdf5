"""TFDS builders (mlc_corpus, mlc_digits) and the tfds: data source, on tiny corpora in tmp dirs."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import fast_config, make_tiny_corpus
from PIL import Image

from mlc_tf import config as config_lib
from mlc_tf.data import builtin, pipeline, sources, split_corpus
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import tfds as mlc_tfds
from mlc_tf.data.tfds import source as tfds_source

LABELS = ["cat", "dog", "sun"]


def _encode(image: Image.Image, fmt: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt)
  return buffer.getvalue()


def _data(tfds_dir, manual_dir=None, **overrides):
  data = config_lib.base_config().data
  data.tfds_data_dir = str(tfds_dir)
  data.tfds_manual_dir = manual_dir
  data.update(overrides)
  return data


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("tfds") / "corpus")
  make_tiny_corpus(root, labels=tuple(LABELS), num_images=30)
  return root


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds_data")


def test_multi_hot_feature_encodes_names_or_vectors():
  feature = mlc_tfds.MultiHotLabels(["a", "b", "c"])
  np.testing.assert_array_equal(feature.encode_example(["c", "a"]), [1, 0, 1])
  np.testing.assert_array_equal(feature.encode_example(np.array([0, 1, 0])), [0, 1, 0])
  np.testing.assert_array_equal(feature.encode_example([]), [0, 0, 0])
  with pytest.raises(ValueError, match=r"unknown label\(s\) \['z'\]"):
    feature.encode_example(["z"])
  with pytest.raises(ValueError, match="0/1 vector of 3 labels"):
    feature.encode_example(np.array([0, 2, 0]))
  restored = tfds.features.FeatureConnector.from_json(feature.to_json())
  assert isinstance(restored, mlc_tfds.MultiHotLabels) and restored.names == ["a", "b", "c"]


def test_rgb_jpeg_keeps_colour_jpegs_and_converts_the_rest():
  pixels = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
  colour = _encode(Image.fromarray(pixels), "JPEG")
  assert mlc_tfds.rgb_jpeg(colour) is colour  # byte for byte
  for other in (_encode(Image.fromarray(pixels).convert("L"), "JPEG"),
                _encode(Image.fromarray(pixels), "PNG"),
                _encode(Image.fromarray(pixels).convert("CMYK"), "JPEG")):
    converted = mlc_tfds.rgb_jpeg(other)
    assert (bool(tf.io.is_jpeg(converted))
            and tf.io.extract_jpeg_shape(converted).numpy().tolist() == [12, 10, 3])
  with pytest.raises(tf.errors.InvalidArgumentError):
    mlc_tfds.rgb_jpeg(b"not an image")


def test_corpus_builder_records(corpus, tfds_dir):
  builder = mlc_tfds.MlcCorpus(config=mlc_tfds.corpus_config(LABELS), data_dir=str(tfds_dir))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=corpus,
                                                                          try_download_gcs=False))
  assert str(builder.info.version) == "1.0.0" and "1.0.0" in builder.RELEASE_NOTES
  assert builder.info.features["labels"].names == LABELS
  assert builder.info.features["image"].shape == (None, None, 3)
  assert builder.info.metadata["reencoded_images"] == 6  # every 5th tiny image is a grayscale JPEG
  frame, _ = corpus_lib.load_corpus(corpus)
  parts = sources.open_source(corpus, _data(tfds_dir)).split(0.15, 0.15, 0)
  for name, rows in zip(("train", "validation", "test"), parts):
    records = list(builder.as_dataset(split=name).as_numpy_iterator())  # TFDS' own decoding
    # the folder source's split
    assert sorted(r["image_id"] for r in records) == sorted(frame.index[rows])
    for record in records:
      assert record["image"].shape == (16, 16, 3)
      np.testing.assert_array_equal(record["labels"],
                                    frame.loc[record["image_id"], LABELS].to_numpy())
  reloaded = tfds.builder_from_directory(builder.data_dir)  # features.json restores the label names
  assert reloaded.info.features["labels"].names == LABELS


def test_corpus_builder_leaves_out_undecodable_files(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, labels=tuple(LABELS), num_images=12)
  open(os.path.join(root, "images", "im50.jpg"), "wb").close()
  with open(os.path.join(root, "images", "im51.jpg"), "w") as f:
    f.write("this is text")
  with open(os.path.join(root, "annotations", "cat.txt"), "a") as f:
    f.write("50\n51\n")
  builder = mlc_tfds.MlcCorpus(config=mlc_tfds.corpus_config(LABELS, test_fraction=0.0),
                               data_dir=str(tmp_path))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=root, try_download_gcs=False))
  assert sorted(builder.info.metadata["skipped_images"]) == ["im50.jpg", "im51.jpg"]
  assert set(builder.info.splits) == {"train", "validation"}  # test_fraction 0: no test split
  assert (builder.info.splits["train"].num_examples
          + builder.info.splits["validation"].num_examples == 12)


def test_digits_builder(tmp_path):
  builder = mlc_tfds.MlcDigits(config=mlc_tfds.digits_config(num_images=40), data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  assert builder.info.features["labels"].names == sorted(builtin.LABELS)
  assert sum(split.num_examples for split in builder.info.splits.values()) == 40
  record = next(builder.as_dataset(split="train").as_numpy_iterator())
  assert record["image"].shape == (builtin.IMAGE_SIZE, builtin.IMAGE_SIZE, 3)
  # the default is the demo corpus itself
  assert mlc_tfds.MlcDigits.BUILDER_CONFIGS[0].num_images == 1500


@pytest.mark.parametrize("rest,parsed", [
    ("mlc_corpus", ("mlc_corpus", None, None)),
    ("voc/2007:train", ("voc/2007", None, "train")),
    ("voc/2007:5.0.0:train[:80%]", ("voc/2007", "5.0.0", "train[:80%]")),
    ("mnist:3.0.1", ("mnist", "3.0.1", None)),
])
def test_parse_spec(rest, parsed):
  assert tfds_source.parse_spec(rest) == parsed


def test_tfds_source_matches_the_folder_source(corpus, tfds_dir):
  data = _data(tfds_dir, corpus)
  records = sources.open_source("tfds:mlc_corpus", data)
  folder = sources.open_source(f"folder:{corpus}", data)
  assert records.label_names == folder.label_names == LABELS
  for rows_tfds, rows_folder in zip(records.split(0.15, 0.15, 0), folder.split(0.15, 0.15, 0)):
    part = records.frame.iloc[rows_tfds]
    assert sorted(part.index) == sorted(folder.frame.index[rows_folder])
    np.testing.assert_array_equal(part[LABELS].to_numpy(),
                                  folder.frame.loc[part.index, LABELS].to_numpy())
  train = records.frame.iloc[records.split(0.15, 0.15, 0)[0]]
  subset = train.iloc[::3]  # a filtered stream, still in stored order
  encoded = list(records.images(subset).as_numpy_iterator())
  gray = {i for i in subset.index if i % 5 == 0}
  for image_id, data_bytes in zip(subset.index, encoded):
    with open(folder.frame.loc[image_id, "path"], "rb") as f:
      assert (data_bytes == f.read()) == (image_id not in gray)  # colour JPEGs byte for byte
  from_records = pipeline.make_dataset(records.images(subset), subset[LABELS], image_size=8,
                                       batch_size=64,
                                      training=False)
  # rows stay aligned across workers
  assert (from_records.options().experimental_distribute.auto_shard_policy
          == tf.data.experimental.AutoShardPolicy.DATA)
  x_tfds, _ = next(iter(from_records))
  x_dir, _ = next(iter(pipeline.make_dataset(folder.images(folder.frame.loc[subset.index]),
                                             subset[LABELS],
                                             image_size=8, batch_size=64, training=False)))
  colour = np.array([i not in gray for i in subset.index])
  np.testing.assert_array_equal(x_tfds.numpy()[colour], x_dir.numpy()[colour])
  # re-encoded grayscale
  np.testing.assert_allclose(x_tfds.numpy()[~colour], x_dir.numpy()[~colour], atol=4)
  with pytest.raises(ValueError, match="stored order"):
    records.images(subset.iloc[::-1])


def test_tfds_source_named_split_is_split_like_a_folder(corpus, tfds_dir):
  records = sources.open_source("tfds:mlc_corpus:train+validation",
                                _data(tfds_dir, corpus, labels=["sun", "dog"]))
  assert records.label_names == ["dog", "sun"] and len(records.frame) == 24
  train, val, test = records.split(0.25, 0.25, 0)
  assert len(train) + len(val) + len(test) == 24 and 5 <= len(test) <= 7
  assert sum(1 for _ in records.images(records.frame.iloc[val])) == len(val)


def test_unprepared_corpus_without_manual_dir_says_what_to_set(tmp_path):
  with pytest.raises(corpus_lib.CorpusError, match="set config.data.tfds_manual_dir"):
    sources.open_source("tfds:mlc_corpus", _data(tmp_path / "empty"))


def test_training_loads_tfds_records(corpus, tfds_dir):
  cfg = fast_config()
  cfg.data.val_fraction = cfg.data.test_fraction = 0.15
  cfg.data.source = "tfds:mlc_corpus"
  cfg.data.tfds_data_dir = str(tfds_dir)
  cfg.data.tfds_manual_dir = corpus
  data = split_corpus.load_and_split(None, cfg)
  folder = split_corpus.load_and_split(corpus, cfg)
  for part, folder_part in ((data.train, folder.train), (data.val, folder.val),
                            (data.test, folder.test)):
    assert sorted(part.index) == sorted(folder_part.index)
  batches = list(split_corpus.dataset_of(data.val, data.label_names, cfg, training=False,
                                         source=data.source))
  np.testing.assert_array_equal(np.concatenate([y for _, y in batches]),
                                data.val[LABELS].to_numpy())
  assert batches[0][0].shape[1:] == (16, 16, 3)


# --- public multi-label datasets: voc/2007 under tfds.testing.mock_data ---

VOC_IMAGES = {  # file name -> the classes of its objects (a class can occur twice)
    "train": {"000005.jpg": ["chair", "chair", "person"], "000007.jpg": ["car"], "000009.jpg": [],
              "000012.jpg": ["dog", "person", "cat"]},
    "validation": {"000017.jpg": ["horse", "person"], "000019.jpg": ["cat"]},
}


def _voc_jpeg(name: str) -> bytes:
  seed = int(name.split(".")[0])
  return _encode(
      Image.fromarray(np.random.default_rng(seed).integers(0, 255, (20, 24, 3), dtype=np.uint8)),
      "JPEG")


def _voc_example(names, name, classes):
  labels = [names.index(c) for c in classes]
  return {"image": _voc_jpeg(name), "image/filename": name, "labels": sorted(set(labels)),
          "labels_no_difficult": sorted(set(labels)),
          "objects": {"bbox": [tfds.features.BBox(0.1, 0.2, 0.5, 0.6)] * len(labels),
                      "label": labels,
                      "is_difficult": [False] * len(labels), "is_truncated": [False] * len(labels),
                      "pose": [0] * len(labels)}}


def _fake_voc(self, split, decoders=None, read_config=None, shuffle_files=False):
  """Stands in for reading voc/2007's records: known examples, serialized and parsed as TFDS
  does."""
  del read_config, shuffle_files
  features = self.info.features
  names = features["objects"]["label"].names
  serialized = [features.serialize_example(_voc_example(names, name, classes))
                for part in split.split("+") for name, classes in VOC_IMAGES[part].items()]
  return tf.data.Dataset.from_tensor_slices(serialized).map(
      lambda example: features.deserialize_example(example, decoders=decoders))


def test_voc_labels_come_from_the_objects(tmp_path):
  with tfds.testing.mock_data(as_dataset_fn=_fake_voc):
    records = sources.open_source("tfds:voc/2007:train", _data(tmp_path))
    assert len(records.label_names) == 20 and "person" in records.label_names
    assert list(records.frame.index) == list(VOC_IMAGES["train"])
    for name, classes in VOC_IMAGES["train"].items():
      assert {label for label in records.label_names
              if records.frame.at[name, label]} == set(classes)
    encoded = list(records.images(records.frame.iloc[[1, 3]]).as_numpy_iterator())
    # bytes as stored, decoded by mlc_tf
    assert encoded == [_voc_jpeg("000007.jpg"), _voc_jpeg("000012.jpg")]
    subset = sources.open_source("tfds:voc/2007:train+validation",
                                 _data(tmp_path, labels=["cat", "person"]))
    assert subset.label_names == ["cat", "person"] and len(subset.frame) == 6
    x, y = next(iter(pipeline.make_dataset(subset.images(subset.frame),
                                           subset.frame[subset.label_names],
                                           image_size=8, batch_size=8, training=False)))
    assert x.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(y.numpy(), subset.frame[["cat", "person"]].to_numpy())
    with pytest.raises(corpus_lib.CorpusError, match=r"no label\(s\) \['unicorn'\]"):
      sources.open_source("tfds:voc/2007:train", _data(tmp_path, labels=["unicorn"]))


def test_voc_without_split_uses_its_own_splits(tmp_path, monkeypatch):
  with tfds.testing.mock_data(as_dataset_fn=_fake_voc):
    builder = tfds.builder("voc/2007")
    splits_known = {name: tfds.core.SplitInfo(name=name, shard_lengths=[len(VOC_IMAGES[name])],
                                              num_bytes=0)
                    for name in VOC_IMAGES}
    monkeypatch.setattr(type(builder.info), "splits", property(lambda info: splits_known))
    records = sources.open_source("tfds:voc/2007", _data(tmp_path))
    # no test split in VOC_IMAGES: carved out of train
    train, val, test = records.split(0.2, 0.5, 0)
    assert list(records.frame.index[val]) == list(VOC_IMAGES["validation"])
    assert len(test) and set(records.frame.index[train]).isdisjoint(records.frame.index[test])
    assert set(records.frame.index[np.concatenate([train, test])]) == set(VOC_IMAGES["train"])


def test_unknown_dataset_is_a_clear_error(tmp_path):
  with pytest.raises(corpus_lib.CorpusError, match="no such TFDS dataset"):
    sources.open_source("tfds:surely_not_a_dataset_name", _data(tmp_path))


def test_streamed_ids_are_checked_against_the_frame(corpus, tfds_dir):
  records = sources.open_source("tfds:mlc_corpus", _data(tfds_dir, corpus))
  first = records.frame.index[0]
  # as if the records had changed under the frame
  records.frame = records.frame.rename(index={first: 999})
  with pytest.raises(tf.errors.InvalidArgumentError, match="TFDS records changed"):
    list(records.images(records.frame))
