import logging
import os

import pytest
from helpers import fast_config, make_tiny_corpus

from mlc_tf.data import additions, corpus, split_corpus


def _untagged(tmp_path, count=6):
  """An untagged folder (images/im<N>.jpg; its annotations are not read) and its truth."""
  folder = str(tmp_path / "untagged")
  truth = make_tiny_corpus(folder, num_images=count, seed=7)
  return folder, truth


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)
  return str(path)


def test_training_adds_the_tagged_photos_to_its_training_split_only(tiny_corpus, tmp_path,
                                                                    caplog):
  root, _ = tiny_corpus
  folder, _ = _untagged(tmp_path)
  cfg = fast_config()
  before = split_corpus.load_and_split(root, cfg)
  cfg.data.additions = _write(os.path.join(folder, "additions.csv"), "\n".join([
      "# tagged in mlc-review",
      "image,labels,note",
      "images/im1.jpg,cat sun,",
      "./images/im2.jpg,,none of the labels",
      'images\\im3.jpg,"dog zebra",zebra is no label of this run',
  ]) + "\n")
  with caplog.at_level(logging.INFO):
    data = split_corpus.load_and_split(root, cfg)
  assert len(data.train) == len(before.train) + 3
  assert (list(data.val.index), list(data.test.index)) == (list(before.val.index),
                                                           list(before.test.index))
  added = data.train.loc[os.path.join(folder, "images", "im1.jpg")]
  assert (added["cat"], added["dog"], added["sun"]) == (1, 0, 1)
  assert data.train.loc[os.path.join(folder, "images", "im2.jpg"), ["cat", "dog", "sun"]].sum() == 0
  assert data.additions["joined"] == 3 and data.additions["tagged_no_label"] == 1
  assert data.additions["labels_not_in_run"] == [(5, "zebra")]
  assert "3 newly tagged photo(s) join" in caplog.text and "line 5 'zebra'" in caplog.text


@pytest.mark.parametrize("rows, message", [
    ("images/gone.jpg,cat", r"additions.csv:2: image 'images/gone.jpg' is not in .*untagged"),
    ("../corpus/images/im1.jpg,cat", r":2: image '../corpus/images/im1.jpg' must be a path "
     "relative"),
    ("/etc/passwd,cat", ":2: image '/etc/passwd' must be a path relative"),
    ("images/im1.jpg,cat\nimages//im1.jpg,dog", ":3: image 'images/im1.jpg' is listed again "
     r"\(first on line 2\)"),
    (",cat", ":2: no image"),
    ('images/im1.jpg,"' + "x" * 200_000 + '"', ":2: not readable as CSV"),  # past csv's limit
])
def test_a_bad_row_stops_training_named_by_line(tiny_corpus, tmp_path, rows, message):
  root, _ = tiny_corpus
  folder, _ = _untagged(tmp_path)
  cfg = fast_config()
  cfg.data.additions = _write(os.path.join(folder, "additions.csv"), f"image,labels\n{rows}\n")
  with pytest.raises(additions.AdditionsError, match=message):
    split_corpus.load_and_split(root, cfg)


def test_a_corpus_photo_a_bad_header_and_a_missing_file_are_named(tiny_corpus, tmp_path):
  root, _ = tiny_corpus
  cfg = fast_config()
  cfg.data.additions = _write(tmp_path / "additions.csv", "image,labels\ncorpus/images/im4.jpg,\n")
  with pytest.raises(additions.AdditionsError, match=r":2: .* is the corpus's image 4: correct"):
    split_corpus.load_and_split(root, cfg)
  cfg.data.additions = _write(tmp_path / "additions.csv", "file,tags\nx.jpg,cat\n")
  with pytest.raises(additions.AdditionsError, match=r":1: header .* lacks column\(s\) \['image', "
                     r"'labels'\]"):
    split_corpus.load_and_split(root, cfg)
  cfg.data.additions = str(tmp_path / "none.csv")
  with pytest.raises(corpus.CorpusError, match="additions file .*none.csv does not exist"):
    split_corpus.load_and_split(root, cfg)


def test_an_undecodable_photo_is_skipped_and_named(tiny_corpus, tmp_path, caplog):
  root, _ = tiny_corpus
  folder, _ = _untagged(tmp_path)
  _write(os.path.join(folder, "images", "broken.jpg"), "not a jpeg")
  cfg = fast_config()
  cfg.data.additions = _write(os.path.join(folder, "additions.csv"),
                              "image,labels\nimages/im1.jpg,cat\nimages/broken.jpg,dog\n")
  with caplog.at_level(logging.WARNING):
    data = split_corpus.load_and_split(root, cfg)
  assert data.additions["joined"] == 1 and len(data.additions["skipped_undecodable"]) == 1
  assert "1 photo(s) cannot be decoded and were skipped" in caplog.text
  cfg.data.strict = True  # the undecodable photo stops the run; a label no photo has does not
  with pytest.raises(additions.AdditionsError, match=r"1 photo\(s\) cannot be decoded .*broken"):
    split_corpus.load_and_split(root, cfg)
  _write(cfg.data.additions, "image,labels\nimages/im1.jpg,cat\n")
  assert split_corpus.load_and_split(root, cfg).additions["joined"] == 1


def test_upsert_replaces_an_images_row_and_keeps_every_other_line(tmp_path):
  path = _write(tmp_path / "additions.csv",
                "# kept\r\nimage,labels,note,who\r\na.jpg,cat,first,me\r\nb.jpg,dog,,you\r\n")
  additions.upsert_additions(path, {"./a.jpg": ["dog", "sun"], "c.jpg": []}, note="review")
  assert open(path, newline="").read() == (
      "# kept\r\nimage,labels,note,who\r\na.jpg,dog sun,review,\r\nb.jpg,dog,,you\r\n"
      "c.jpg,,review,\r\n")
  tagged, problems = additions.tagged(path)
  assert tagged == {"a.jpg": ("dog", "sun"), "b.jpg": ("dog",), "c.jpg": ()} and not problems
  fresh = str(tmp_path / "new.csv")
  additions.upsert_additions(fresh, {"x/y.jpg": ["cat"]})
  assert open(fresh).read() == "image,labels,note\nx/y.jpg,cat,\n"
  text = 'image,labels\na.jpg,"' + "x" * 200_000 + '"\n'
  broken = _write(tmp_path / "broken.csv", text)
  with pytest.raises(additions.AdditionsError, match="broken.csv:2: not readable as CSV.*not "
                     "writing into it"):
    additions.upsert_additions(broken, {"b.jpg": ["cat"]})
  assert open(broken).read() == text


def test_cross_validation_trains_every_fold_on_the_additions_too(tiny_corpus, tmp_path,
                                                                 monkeypatch):
  from mlc_tf.experiments import crossval

  root, _ = tiny_corpus
  folder, _ = _untagged(tmp_path)
  cfg = fast_config()
  cfg.data.additions = _write(os.path.join(folder, "additions.csv"),
                              "image,labels\nimages/im1.jpg,cat\nimages/im2.jpg,\n")
  seen = []

  class Stop(Exception):
    pass

  def train_on(cfg, data, workdir, **kwargs):  # what a fold would train on; no training
    seen.append(data)
    raise Stop

  monkeypatch.setattr(crossval.training, "train_on", train_on)
  with pytest.raises(Stop):
    crossval.cross_validate(cfg, root, str(tmp_path / "cv"), num_folds=2, verbose=0)
  fold = seen[0]
  assert os.path.join(folder, "images", "im1.jpg") in fold.train.index
  assert fold.train.loc[os.path.join(folder, "images", "im1.jpg"), "cat"] == 1
  assert fold.additions["joined"] == 2
  assert not set(fold.test.index) & set(fold.train.index)
