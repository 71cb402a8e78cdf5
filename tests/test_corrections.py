import logging
import multiprocessing
import os
import pathlib
import threading

import pandas as pd
import pytest
from helpers import fast_config, make_tiny_corpus

from mlc_tf.data import corpus, corrections, split_corpus


def _write(path, text):
  path.write_text(text)
  return str(path)


def test_corrections_are_applied_and_every_row_is_accounted_for(tiny_corpus, tmp_path):
  root, truth = tiny_corpus
  frame, _ = corpus.load_corpus(root)
  with_cat = next(i for i, labels in truth.items() if "cat" in labels)
  without_dog = next(i for i, labels in truth.items() if "dog" not in labels)
  path = _write(tmp_path / "fix.csv", "\n".join([
      "# reviewed by hand",
      "image_id,label,action,note",
      f"{with_cat},cat,remove,not a cat",
      f"{without_dog},dog,ADD,",
      f"{with_cat},sun,{'remove' if 'sun' in truth[with_cat] else 'add'},",
      f"{without_dog},dog,add,said twice",
      "",
      "99999,cat,add,no such image",
      f"{with_cat},zebra,add,label not in the run",
  ]) + "\n")
  fixed, report = corrections.apply_corrections(frame, corrections.read_corrections(path), path)
  assert fixed.at[with_cat, "cat"] == 0 and fixed.at[without_dog, "dog"] == 1
  assert frame.at[with_cat, "cat"] == 1  # the input frame is left alone
  assert report.removed[0] == (with_cat, "cat") and (without_dog, "dog") in report.added
  assert len(report.added) + len(report.removed) == 3
  assert report.already_so == [(6, without_dog, "dog", "add")]
  assert report.unknown_images == [(8, 99999)] and report.unknown_labels == [(9, "zebra")]
  summary = "\n".join(report.lines())
  assert "changed nothing" in summary and "line 8 id 99999" in summary and "'zebra'" in summary


@pytest.mark.parametrize("text, message", [
    ("id,label,action\n1,cat,add\n", r"lacks column\(s\) \['image_id'\]"),
    ("image_id,label,action\n,cat,add\n", ":2: no image id"),
    ("image_id,label,action\n1,cat,flip\n", ":2: action must be one of"),
    ("image_id,label,action\n1,,add\n", ":2: no label"),
    ("image_id,label,action\n1,cat,add\n\n1,cat,remove\n",
     ":4: remove 'cat' for image 1 contradicts line 2"),
])
def test_bad_corrections_files_name_file_and_line(tmp_path, text, message):
  path = _write(tmp_path / "bad.csv", text)
  with pytest.raises(corrections.CorrectionsError, match=message):
    corrections.read_corrections(path)


def test_a_utf8_bom_is_read_past_and_bytes_that_are_not_utf8_are_named(tmp_path):
  bom = tmp_path / "bom.csv"
  # what spreadsheets write
  bom.write_bytes("image_id,label,action\n1,cat,add\n".encode("utf-8-sig"))
  assert [(c.image_id, c.label, c.action) for c in corrections.read_corrections(str(bom))
         ] == [("1", "cat", "add")]
  corrections.upsert_corrections(str(bom), [("2", "dog", "remove", "")])
  assert [c.image_id for c in corrections.read_corrections(str(bom))] == ["1", "2"]
  latin1 = tmp_path / "latin1.csv"
  latin1.write_bytes(b"image_id,label,action\n1,caf\xe9,add\n")
  with pytest.raises(corrections.CorrectionsError, match=r"latin1.csv is not UTF-8 text \(byte 27"):
    corrections.read_corrections(str(latin1))
  with pytest.raises(corrections.CorrectionsError, match="is not UTF-8 text"):
    corrections.upsert_corrections(str(latin1), [("2", "dog", "remove", "")])


def test_ids_of_a_csv_source_are_file_names(tmp_path):
  frame = pd.DataFrame({"cat": [1, 0], "path": ["a/1.jpg", "b.png"]},
                       index=pd.Index(["a/1.jpg", "b.png"], name="image_id"))
  path = _write(tmp_path / "fix.csv",
                "image_id,label,action\na/1.jpg,cat,remove\nb.png,cat,add\n1,cat,add\n")
  fixed, report = corrections.apply_corrections(frame, corrections.read_corrections(path))
  assert list(fixed["cat"]) == [0, 1] and report.unknown_images == [(4, "1")]


def test_training_load_applies_the_configured_file_and_reports_it(tmp_path, caplog):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root)
  with_cat = next(i for i, labels in truth.items() if "cat" in labels)
  cfg = fast_config()
  cfg.data.corrections = _write(tmp_path / "fix.csv",
                                f"image_id,label,action\n{with_cat},cat,remove\n")
  with caplog.at_level(logging.WARNING):
    data = split_corpus.load_and_split(root, cfg)
  frames = [data.train, data.val, data.test]
  row = next(f.loc[with_cat] for f in frames if with_cat in f.index)
  assert row["cat"] == 0
  assert sum(
      int(f["cat"].sum()) for f in frames) == sum("cat" in labels for labels in truth.values()) - 1
  assert "1 label(s) added" not in caplog.text and "0 label(s) added, 1 removed" in caplog.text
  cfg.data.corrections = str(tmp_path / "missing.csv")
  with pytest.raises(corpus.CorpusError, match="does not exist"):
    split_corpus.load_and_split(root, cfg)


def test_parse_corrections_reports_bad_rows_by_line_and_keeps_the_good_ones():
  text = ("# by hand\nimage_id,label,action\n1,cat,add\n2,cat,flip\n,dog,add\n1,cat,remove\n"
          "3,dog,remove\n")
  found, problems = corrections.parse_corrections(text)
  assert [(c.image_id, c.label, c.action, c.line) for c in found] == [("1", "cat", "add", 3),
                                                                      ("3", "dog", "remove", 7)]
  assert [p.line for p in problems] == [4, 5, 6]
  assert "found 'flip'" in problems[0].message and "contradicts line 3" in problems[2].message


def test_upsert_replaces_a_pairs_row_and_keeps_every_other_line(tmp_path):
  path = str(tmp_path / "fix.csv")
  corrections.upsert_corrections(path, [("7", "cat", "remove", "reviewed")])
  assert pathlib.Path(path).read_text() == "image_id,label,action,note\n7,cat,remove,reviewed\n"
  with open(path, "a") as f:
    f.write("# a comment\n8,dog,bogus,kept as written\n")
  corrections.upsert_corrections(path, [("7", "cat", "add", 'says "yes", twice'),
                                        ("9", "sun", "add", "")])
  assert pathlib.Path(path).read_text().splitlines() == [
      "image_id,label,action,note", '7,cat,add,"says ""yes"", twice"', "# a comment",
      "8,dog,bogus,kept as written", "9,sun,add,"
  ]
  found, problems = corrections.parse_corrections(pathlib.Path(path).read_text())
  assert [(c.image_id, c.action) for c in found] == [("7", "add"), ("9", "add")
                                                    ] and [p.line for p in problems] == [4]
  # no temporary file left
  assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def test_upsert_writes_the_columns_of_an_existing_header_only(tmp_path):
  path = _write(tmp_path / "suspects.csv", "image_id,label,action,probability\n1,cat,remove,0.01\n")
  corrections.upsert_corrections(path, [("2", "dog", "add", "a note")])
  assert pathlib.Path(
      path).read_text() == "image_id,label,action,probability\n1,cat,remove,0.01\n2,dog,add,\n"
  bad = _write(tmp_path / "bad.csv", "id,label\n")
  with pytest.raises(corrections.CorrectionsError, match="lacks column"):
    corrections.upsert_corrections(bad, [("2", "dog", "add", "")])
  with pytest.raises(ValueError, match="action"):
    corrections.upsert_corrections(path, [("2", "dog", "flip", "")])


def _upsert_many(path, writer, count):
  for k in range(count):
    corrections.upsert_corrections(
        path, [(str(k), f"label{writer}", "add" if k % 2 else "remove", f"w{writer}")])


def test_concurrent_writers_never_lose_or_corrupt_a_row(tmp_path):
  path = str(tmp_path / "fix.csv")
  count = 15
  processes = [
      multiprocessing.get_context("fork").Process(target=_upsert_many, args=(path, w, count))
      for w in range(2)
  ]
  threads = [threading.Thread(target=_upsert_many, args=(path, w, count)) for w in range(2, 4)]
  for worker in processes + threads:
    worker.start()
  for worker in processes + threads:
    worker.join()
  assert all(p.exitcode == 0 for p in processes)
  found, problems = corrections.parse_corrections(pathlib.Path(path).read_text())
  assert not problems
  assert sorted((c.image_id, c.label) for c in found) == sorted(
      (str(k), f"label{w}") for k in range(count) for w in range(4))


def test_the_split_corpus_is_the_corrected_merged_corpus_split(tiny_corpus, tmp_path):
  root, truth = tiny_corpus
  with_cat = next(i for i, labels in truth.items() if "cat" in labels)
  cfg = fast_config()
  cfg.data.corrections = _write(tmp_path / "fix.csv",
                                f"image_id,label,action\n{with_cat},cat,remove\n")
  cfg.rules.merges = {"pets": ["cat", "dog"]}
  data = split_corpus.load_and_split(root, cfg)
  whole = data.source.frame  # what cross-validation and `--split=all` read
  assert data.label_names == ["pets", "sun"] and corpus.label_columns(whole) == ["pets", "sun"]
  assert whole.at[with_cat, "pets"] == int("dog" in truth[with_cat])
  parts = pd.concat([data.train, data.val, data.test])
  assert sorted(parts.index) == sorted(whole.index)
  pd.testing.assert_frame_equal(data.test, whole.loc[data.test.index])


def test_hand_written_ids_have_one_meaning_in_training(tmp_path):
  root = str(tmp_path / "corpus")
  truth = make_tiny_corpus(root, num_images=6)
  with_cat = next(i for i, labels in truth.items() if "cat" in labels)
  cfg = fast_config()
  cfg.data.corrections = _write(tmp_path / "fix.csv",
                                f"image_id,label,action\n0{with_cat},cat,remove\n")
  data = split_corpus.load_and_split(root, cfg)
  assert data.source.frame.at[with_cat, "cat"] == 0  # 01 is image 1
  for text, message in [
      (f"image_id,label,action\n{with_cat},cat,add\n0{with_cat},cat,remove\n",
       f"fix.csv:3: remove 'cat' for image 0{with_cat} contradicts line 2 "
       rf"\(add for image {with_cat}\)"),
      ("image_id,label,action\n1,cat,add\n\u00b2,cat,add\n",
       "fix.csv:3: image id '\u00b2' is not a number in ASCII digits"),
      ("image_id,label,action\n\uff11,cat,add\n", "fix.csv:2: image id '\uff11' is not a number"),
  ]:
    pathlib.Path(cfg.data.corrections).write_text(text)
    with pytest.raises(corrections.CorrectionsError, match=message):
      split_corpus.load_and_split(root, cfg)


def test_a_quoted_note_spans_lines_and_unicode_line_separators_are_text(tmp_path):
  # what a spreadsheet writes: a note over two lines, CRLF line ends; U+2028 and NEL inside notes
  text = ('image_id,label,action,note\r\n1,cat,remove,"not a cat:\r\na puppy"\r\n# a comment\r\n'
          '2,dog,add,one\u2028two\r\n3,sun,add,three\x85four\r\n4,cat,add,"no line end"')
  path = tmp_path / "fix.csv"
  path.write_bytes(text.encode())
  found = corrections.read_corrections(str(path))
  assert [(c.image_id, c.label, c.action, c.line) for c in found] == [
      ("1", "cat", "remove", 2), ("2", "dog", "add", 5), ("3", "sun", "add", 6),
      ("4", "cat", "add", 7)]
  corrections.upsert_corrections(str(path), [("5", "dog", "remove", "new,\nrow")])
  assert path.read_bytes().decode() == text + '\r\n5,dog,remove,"new,\nrow"\r\n'
  corrections.upsert_corrections(str(path), [("02", "dog", "remove", "")])  # replaces image 2's
  assert path.read_bytes().decode() == text.replace("2,dog,add,one\u2028two", "02,dog,remove,") + (
      '\r\n5,dog,remove,"new,\nrow"\r\n')
  path.write_text("image_id,label,action,note\n1,cat,add," + '"' + "x" * 200_000 + '"\n')
  with pytest.raises(corrections.CorrectionsError, match="fix.csv:2: not readable as CSV"):
    corrections.read_corrections(str(path))
  with pytest.raises(corrections.CorrectionsError, match="fix.csv:2: not readable as CSV"):
    corrections.upsert_corrections(str(path), [("5", "dog", "remove", "")])
