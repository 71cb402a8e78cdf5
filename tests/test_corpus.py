import os

import pytest

from mlc_tf.data import builtin
from mlc_tf.data import corpus as corpus_lib


def test_round_trip(tiny_corpus):
  root, truth = tiny_corpus
  frame, audit = corpus_lib.load_corpus(root)
  assert frame.index.name == "image_id"
  assert corpus_lib.label_columns(frame) == ["cat", "dog", "sun"]
  assert list(frame.index) == sorted(truth)
  for image_id, present in truth.items():
    assert {label for label in ("cat", "dog", "sun") if frame.at[image_id, label] == 1} == present
  assert frame["path"].map(os.path.exists).all()
  assert audit.num_images == len(truth) and audit.warnings() == []


def test_write_corpus_round_trip(tiny_corpus, tmp_path):
  root, _ = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root)
  copy = str(tmp_path / "copy")
  os.makedirs(copy)
  os.symlink(os.path.join(root, "images"), os.path.join(copy, "images"))
  corpus_lib.write_corpus(copy, frame)
  again, _ = corpus_lib.load_corpus(copy)
  labels = corpus_lib.label_columns(frame)
  assert (again[labels].to_numpy() == frame[labels].to_numpy()).all()


def test_label_subset_and_unlisted_image(tiny_corpus):
  root, truth = tiny_corpus
  frame, _ = corpus_lib.load_corpus(root, labels=["sun", "cat"])
  assert corpus_lib.label_columns(frame) == ["cat", "sun"]
  assert len(frame) == len(truth)  # images in no annotation file are samples with no label


@pytest.mark.parametrize("missing", ["images", "annotations"])
def test_missing_directory_is_a_clear_error(tiny_corpus, missing):
  root, _ = tiny_corpus
  os.rename(os.path.join(root, missing), os.path.join(root, missing + "_gone"))
  with pytest.raises(corpus_lib.CorpusError, match=f"no {missing}/ directory"):
    corpus_lib.load_corpus(root)


def test_non_integer_token_names_file_and_line(tiny_corpus):
  root, _ = tiny_corpus
  with open(os.path.join(root, "annotations", "dog.txt"), "a") as f:
    f.write("12\r\n\r\n  \nim12\n")
  with pytest.raises(corpus_lib.CorpusError,
                     match=r"dog\.txt:\d+: expected one integer image id per line, found 'im12'"):
    corpus_lib.load_corpus(root)


def test_missing_image_and_duplicates_are_counted(tiny_corpus):
  root, truth = tiny_corpus
  first_cat = min(i for i, p in truth.items() if "cat" in p)
  with open(os.path.join(root, "annotations", "cat.txt"), "a") as f:
    f.write(f"9999\r\n{first_cat}  \n\n")
  frame, audit = corpus_lib.load_corpus(root)
  assert [(label, i) for label, _, i in audit.missing_images] == [("cat", 9999)]
  assert [(label, i) for label, _, i in audit.duplicate_ids] == [("cat", first_cat)]
  assert 9999 not in frame.index
  text = "\n".join(audit.warnings())
  assert "cat.txt" in text and "9999" in text


def test_unknown_label_is_an_error(tiny_corpus):
  root, _ = tiny_corpus
  with pytest.raises(corpus_lib.CorpusError, match="no annotation file for label"):
    corpus_lib.load_corpus(root, labels=["cat", "unicorn"])


@pytest.mark.parametrize("strict", [False, True])
def test_a_label_named_as_the_frames_path_column_is_refused_not_lost(tiny_corpus, strict):
  root, _ = tiny_corpus
  annotations = os.path.join(root, "annotations")
  os.rename(os.path.join(annotations, "cat.txt"), os.path.join(annotations, "path.txt"))
  with pytest.raises(corpus_lib.CorpusError, match=r"label name\(s\) \['path'\] are reserved"):
    corpus_lib.load_corpus(root, strict=strict)
  # asked for by name too; left out, the file is merely ignored
  with pytest.raises(corpus_lib.CorpusError, match="reserved"):
    corpus_lib.load_corpus(root, labels=["path", "dog"])
  frame, audit = corpus_lib.load_corpus(root, labels=["dog", "sun"])
  assert audit.ignored_label_files == ["path.txt"] and frame["path"].map(os.path.exists).all()


def test_csv_label_named_path_is_refused(tiny_corpus):
  root, truth = tiny_corpus
  from mlc_tf.data import sources
  for header, row in (("file,labels", "images/im{i}.jpg,path cat"),
                      ("file,path,cat", "images/im{i}.jpg,1,0")):
    with open(os.path.join(root, "labels.csv"), "w") as f:
      f.write("\n".join([header] + [row.format(i=i) for i in truth]) + "\n")
    with pytest.raises(corpus_lib.CorpusError, match=r"labels\.csv: .*\['path'\] are reserved"):
      sources.load_csv(os.path.join(root, "labels.csv"))


@pytest.mark.parametrize("name", ["cat.TXT", "cat.Txt"])
def test_annotation_extension_matches_in_any_case(tiny_corpus, name):
  root, truth = tiny_corpus
  annotations = os.path.join(root, "annotations")
  os.rename(os.path.join(annotations, "cat.txt"), os.path.join(annotations, name))
  frame, audit = corpus_lib.load_corpus(root)
  assert corpus_lib.label_columns(frame) == ["cat", "dog", "sun"]
  assert {i for i in truth if frame.at[i, "cat"]} == {i for i, p in truth.items() if "cat" in p}
  # two files of one label: which is meant cannot be guessed
  with open(os.path.join(annotations, "cat.txt"), "w") as f:
    f.write("1\n")
  with pytest.raises(corpus_lib.CorpusError,
                     match=f"two annotation files for label 'cat': .*{name}"):
    corpus_lib.load_corpus(root)


def test_demo_corpus_is_deterministic_and_imbalanced(tmp_path):
  a = builtin.ensure_demo_corpus(str(tmp_path / "a"), num_images=300, seed=3)
  b = builtin.ensure_demo_corpus(str(tmp_path / "b"), num_images=300, seed=3)
  with open(os.path.join(a, "images", "im7.jpg"),
            "rb") as fa, open(os.path.join(b, "images", "im7.jpg"), "rb") as fb:
    assert fa.read() == fb.read()
  frame, audit = corpus_lib.load_corpus(a)
  labels = corpus_lib.label_columns(frame)
  assert labels == sorted(builtin.LABELS) and audit.num_images == 300
  share = frame[labels].mean()
  assert share["one"] > 0.35 and share["five"] < 0.1  # one dominant label, one rare label
  assert 0.25 < (frame[labels].sum(axis=1) == 0).mean() < 0.55  # many images with no label
  from PIL import Image
  modes = {Image.open(p).mode for p in frame["path"]}
  assert modes == {"RGB", "L"}
  assert builtin.ensure_demo_corpus(str(tmp_path / "a"), num_images=300, seed=3) == a  # cached
