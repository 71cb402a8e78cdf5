"""folder: and csv: data sources, and the source spec in training and the CLI."""

import os

import numpy as np
import pytest
from helpers import fast_config

from mlc_tf import config as config_lib
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import pipeline, sources, split_corpus


def _data(**overrides):
  data = config_lib.base_config().data
  data.update(overrides)
  return data


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)


@pytest.mark.parametrize("prefix", ["folder:", ""])
def test_folder_source_is_the_corpus_loader(tiny_corpus, prefix):
  root, _ = tiny_corpus
  source = sources.open_source(prefix + root, _data(labels=["sun", "cat"]))
  expected, _ = corpus_lib.load_corpus(root, ["sun", "cat"])
  assert source.frame.equals(expected) and source.label_names == ["cat", "sun"]
  np.testing.assert_array_equal(source.images(source.frame.iloc[[3, 1]]),
                                expected["path"].to_numpy()[[3, 1]])


def test_empty_spec_is_a_clear_error():
  with pytest.raises(corpus_lib.CorpusError, match="no data source"):
    sources.open_source("", _data())


def test_csv_space_separated_labels(tiny_corpus):
  root, truth = tiny_corpus
  lines = ["file,labels"] + [f"images/im{i}.jpg,{' '.join(sorted(labels))}"
                             for i, labels in truth.items()]
  _write(os.path.join(root, "labels.csv"), "\r\n".join(lines) + "\r\n\r\n")
  source = sources.open_source(f"csv:{os.path.join(root, 'labels.csv')}", _data())
  folder, _ = corpus_lib.load_corpus(root)
  assert source.label_names == ["cat", "dog", "sun"]
  assert list(source.frame.index) == [f"images/im{i}.jpg" for i in truth]
  np.testing.assert_array_equal(source.frame[["cat", "dog", "sun"]].to_numpy(),
                                folder.loc[list(truth), ["cat", "dog", "sun"]].to_numpy())
  assert source.frame["path"].map(os.path.exists).all()
  assert source.audit.num_images == len(truth)


def test_csv_one_column_per_label_subset_and_missing_file(tiny_corpus):
  root, truth = tiny_corpus
  os.makedirs(os.path.join(root, "lists"))
  os.rename(os.path.join(root, "images"), os.path.join(root, "lists", "images"))
  lines = ["image,sun,dog,cat"] + [f"images/im{i}.jpg,{int('sun' in tags)},{int('dog' in tags)},"
                                   f"{int('cat' in tags)}"
                                   for i, tags in truth.items()]
  lines.append("images/im999.jpg,1,0,0")
  _write(os.path.join(root, "lists", "labels.csv"), "\n".join(lines) + "\n")
  source = sources.open_source(f"csv:{os.path.join(root, 'lists', 'labels.csv')}",
                               _data(labels=["sun", "dog"]))
  assert source.label_names == ["dog", "sun"] and len(source.frame) == len(truth)
  for i, labels in truth.items():
    row = source.frame.loc[f"images/im{i}.jpg"]
    assert (row["dog"], row["sun"]) == (int("dog" in labels), int("sun" in labels))
  assert source.audit.missing_files == [(len(truth) + 2, "images/im999.jpg")]
  assert "im999.jpg" in "\n".join(source.audit.warnings())


@pytest.mark.parametrize("path",
                         ["../outside.jpg", "images/../../outside.jpg", "/etc/passwd", "C:\\x.jpg",
                                  "gs://bucket/x.jpg", "..\\outside.jpg"])
def test_csv_path_escaping_the_corpus_root_is_rejected(tiny_corpus, path):
  root, _ = tiny_corpus
  _write(os.path.join(root, "labels.csv"), f"file,labels\nimages/im1.jpg,cat\n{path},dog\n")
  with pytest.raises(corpus_lib.CorpusError,
                     match=r"labels\.csv:3: image path .* escapes the corpus root"):
    sources.open_source(f"csv:{os.path.join(root, 'labels.csv')}", _data())


@pytest.mark.parametrize("text,message", [
    ("file,cat,dog\nimages/im1.jpg,1,yes\n",
     r"labels\.csv:2: label columns hold 0 or 1, found dog='yes'"),
    ("file,cat\nimages/im1.jpg,1,0\n", r"labels\.csv:2: expected 2 columns"),
    ("file,labels\nimages/im1.jpg,cat\nimages/im1.jpg,dog\n",
     r"labels\.csv:3: images/im1\.jpg is listed twice"),
    ("file,cat,cat\n", r"labels\.csv:1: label columns must have distinct"),
    ("", r"labels\.csv is empty"),
])
def test_csv_garbage_names_file_and_line(tiny_corpus, text, message):
  root, _ = tiny_corpus
  _write(os.path.join(root, "labels.csv"), text)
  with pytest.raises(corpus_lib.CorpusError, match=message):
    sources.open_source(f"csv:{os.path.join(root, 'labels.csv')}", _data())


def test_csv_unknown_label_column_is_an_error_but_an_unseen_tag_is_kept(tiny_corpus):
  root, _ = tiny_corpus
  _write(os.path.join(root, "onehot.csv"), "file,cat\nimages/im1.jpg,1\n")
  with pytest.raises(corpus_lib.CorpusError, match=r"no column for label\(s\) \['dog'\]"):
    sources.open_source(f"csv:{os.path.join(root, 'onehot.csv')}", _data(labels=["cat", "dog"]))
  _write(os.path.join(root, "tags.csv"), "file,tags\nimages/im1.jpg,cat\nimages/im2.jpg,\n")
  source = sources.open_source(f"csv:{os.path.join(root, 'tags.csv')}",
                               _data(labels=["cat", "dog"]))
  assert source.frame[["cat", "dog"]].to_numpy().tolist() == [[1, 0], [0, 0]]
  assert source.audit.empty_labels == ["dog"]


def test_csv_source_feeds_the_pipeline_like_the_folder(tiny_corpus):
  root, truth = tiny_corpus
  lines = ["file,labels"] + [f"./images/im{i}.jpg,{' '.join(labels)}"
                             for i, labels in truth.items()]
  _write(os.path.join(root, "labels.csv"), "\n".join(lines))
  source = sources.open_source(f"csv:{os.path.join(root, 'labels.csv')}", _data())
  folder = sources.open_source(root, _data())
  x_csv, y_csv = next(iter(pipeline.make_dataset(source.images(source.frame),
                                                 source.frame[source.label_names],
                                                 image_size=8, batch_size=64, training=False)))
  x_dir, y_dir = next(iter(pipeline.make_dataset(folder.images(folder.frame),
                                                 folder.frame[folder.label_names],
                                                 image_size=8, batch_size=64, training=False)))
  np.testing.assert_array_equal(x_csv.numpy(), x_dir.numpy())
  np.testing.assert_array_equal(y_csv.numpy(), y_dir.numpy())


def test_training_reads_config_data_source(tiny_corpus):
  root, truth = tiny_corpus
  lines = ["file,labels"] + [f"images/im{i}.jpg,{' '.join(labels)}" for i, labels in truth.items()]
  _write(os.path.join(root, "labels.csv"), "\n".join(lines))
  cfg = fast_config(epochs=1)
  cfg.data.source = f"csv:{os.path.join(root, 'labels.csv')}"
  data = split_corpus.load_and_split(None, cfg)
  assert data.source.spec == cfg.data.source and data.label_names == ["cat", "dog", "sun"]
  parts = [set(part.index) for part in (data.train, data.val, data.test)]
  assert (set.union(*parts) == {f"images/im{i}.jpg" for i in truth}
          and sum(map(len, parts)) == len(truth))
  ds = split_corpus.dataset_of(data.val, data.label_names, cfg, training=False, source=data.source)
  assert sum(len(y) for _, y in ds) == len(data.val)

