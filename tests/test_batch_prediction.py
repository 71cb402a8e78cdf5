"""mlc-predict on Apache Beam against local mlc-predict: the same rows, failures counted, one or two
workers.

The runner is pinned to Beam's in-process FnApiRunner: DirectRunner first tries
the Prism runner, which downloads a binary (these machines cannot) and then
falls back, and the fallback is not what should be tested. Skipped where
apache_beam is not installed (the `beam` extra; the `test` extra has it),
except under CI, which installs it: there a missing Beam fails.
"""

import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from helpers import REPO_ROOT, run_cli

try:
  import apache_beam  # noqa: F401
except ImportError as error:
  message = f"apache_beam is not importable ({error}): pip install -e '.[beam]'"
  if os.environ.get("CI"):
    pytest.fail(f"CI installs the test extra, which has Beam, but {message}", pytrace=False)
  pytest.skip(message, allow_module_level=True)

from mlc_tf.data import corpus  # noqa: E402
from mlc_tf.serving import batch_prediction, prediction  # noqa: E402

IN_PROCESS = "--runner=FnApiRunner"


@pytest.fixture
def photo_folder(tiny_trained, tmp_path):
  """Six corpus images, a truncated JPEG, a text file named .jpg, a socket named .jpg (unreadable,
  even to root), a named pipe (FIFO: a read would wait for a writer forever), a folder named .jpg
  and a dangling symbolic link named .jpg, plus a non-image extension (left out, and said so) and a
  subfolder that neither path reads."""
  root, _, _ = tiny_trained
  folder = tmp_path / "photos"
  folder.mkdir()
  for i in range(1, 7):  # im5 is grayscale
    shutil.copy(os.path.join(root, "images", f"im{i}.jpg"), folder / f"im{i}.jpg")
  whole = (folder / "im1.jpg").read_bytes()
  (folder / "corrupt.jpg").write_bytes(whole[:len(whole) // 2])
  (folder / "notes.jpg").write_text("not an image")
  (folder / "notes.txt").write_text("not an image extension")
  (folder / "sub").mkdir()
  shutil.copy(os.path.join(root, "images", "im7.jpg"), folder / "sub" / "im7.jpg")
  with socket.socket(socket.AF_UNIX) as unreadable:  # open() fails with ENXIO, whoever asks
    unreadable.bind(str(folder / "s.jpg"))
  # a link to a missing file: Beam's match skips it
  (folder / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
  os.mkfifo(folder / "pipe.jpg")
  (folder / "dir.jpg").mkdir()  # Beam's match cannot see it
  return str(folder)


def _lines(path):
  with open(path, "rb") as f:
    return f.read().decode().splitlines(keepends=True)


def _shards(pattern):
  """(header lines, data lines) of the shards matching ``pattern``; every shard must start with the
  header."""
  shards = sorted(glob.glob(pattern))
  assert shards, pattern
  headers, rows = set(), []
  for shard in shards:
    lines = _lines(shard)
    headers.add(lines[0])
    rows += lines[1:]
  assert len(headers) == 1, headers
  return headers.pop(), rows


def _local(model, folder, output, probabilities):
  """Local mlc-predict's library call: (header line, data lines, skipped basenames)."""
  summary = prediction.predict_to_csv(prediction.load_predictor(model),
                                      prediction.list_images([folder]), output, batch_size=4,
                                      probabilities=probabilities)
  lines = _lines(output)
  return lines[0], lines[1:], sorted(os.path.basename(path) for path in summary.skipped)


def _failures(prefix):
  with open(f"{prefix}-failures-00000-of-00001.csv", newline="") as f:
    return {os.path.basename(row["file"]): row["reason"] for row in csv.DictReader(f)}


def test_beam_writes_local_mlc_predicts_rows_and_counts_what_it_could_not_tag(
    tiny_saved_model, photo_folder, tmp_path):
  header, rows, skipped = _local(tiny_saved_model, photo_folder, str(tmp_path / "local.csv"),
                                 probabilities=True)
  assert skipped == ["corrupt.jpg", "dir.jpg", "gone.jpg", "notes.jpg", "pipe.jpg", "s.jpg"]
  assert len(rows) == 6
  prefix = str(tmp_path / "beam" / "tags")
  summary = batch_prediction.predict_to_shards(tiny_saved_model, [photo_folder], f"{prefix}.csv",
                                               [IN_PROCESS], probabilities=True, max_batch_size=4,
                                               num_shards=2, json_lines=True)
  assert sorted(os.listdir(tmp_path / "beam")) == [
      "tags-00000-of-00002.csv", "tags-00000-of-00002.jsonl", "tags-00001-of-00002.csv",
      "tags-00001-of-00002.jsonl", "tags-counters.json", "tags-failures-00000-of-00001.csv"
  ]
  beam_header, beam_rows = _shards(f"{prefix}-*-of-00002.csv")
  assert beam_header == header and sorted(beam_rows) == sorted(rows)  # byte for byte, \r\n included

  labels = list(csv.reader([header]))[0][1:4]
  local_rows = list(csv.DictReader([header, *rows]))
  assert summary.counters == {
      "tagged": 6, "invalid": 2, "unreadable": 4, "left_out": 1,
      "positives": {name: sum(int(row[name]) for row in local_rows) for name in labels}
  }
  with open(summary.counters_path) as f:
    assert json.load(f) == summary.counters
  failures = _failures(prefix)
  # every file of the folder: tagged or listed
  assert sorted(failures) == sorted([*skipped, "notes.txt"])
  # the corpus audit's (and local mlc-predict's) words, not a generic one
  for name in ("corrupt.jpg", "notes.jpg"):
    assert failures[name] == corpus.undecodable_reason(
        (tmp_path / "photos" / name).read_bytes()), failures
  assert failures["notes.jpg"] == "not a JPEG, PNG, GIF or BMP image"
  assert failures["s.jpg"].startswith(
      "unreadable: ") and failures["gone.jpg"] == batch_prediction.DANGLING_LINK
  assert failures["notes.txt"] == batch_prediction.LEFT_OUT
  assert failures["pipe.jpg"] == "unreadable: not a regular file: a named pipe (FIFO)"
  assert failures["dir.jpg"] == batch_prediction.FOLDER_NAMED_AS_IMAGE

  json_rows = [
      json.loads(line) for shard in sorted(glob.glob(f"{prefix}-*.jsonl")) for line in _lines(shard)
  ]
  as_csv = [{
      key: str(value) if key in ("file", *labels) else f"{value:.6f}" for key, value in row.items()
  } for row in json_rows]
  assert sorted(as_csv, key=lambda row: row["file"]) == sorted(local_rows,
                                                               key=lambda row: row["file"])


def test_mlc_predict_with_a_runner_on_two_worker_processes_writes_the_same_rows(
    tiny_saved_model, photo_folder, tmp_path):
  header, rows, _ = _local(tiny_saved_model, photo_folder, str(tmp_path / "local.csv"),
                           probabilities=False)
  prefix = str(tmp_path / "beam" / "tags")
  stdout = run_cli("predict", f"--model={tiny_saved_model}", f"--images={photo_folder}",
                   f"--output={prefix}", "--batch_size=3", IN_PROCESS, "--",
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing")
  assert "tagged 6 image(s); 2 not decodable, 4 unreadable, 1 left out" in stdout, stdout
  beam_header, beam_rows = _shards(f"{prefix}-?????-of-?????.csv")
  assert beam_header == header and sorted(beam_rows) == sorted(rows)
  assert sorted(_failures(prefix)) == ["corrupt.jpg", "dir.jpg", "gone.jpg", "notes.jpg",
                                       "notes.txt", "pipe.jpg", "s.jpg"]


def test_a_file_without_read_permission_is_counted_and_the_run_goes_on(
    tiny_saved_model, photo_folder, tmp_path):
  locked = os.path.join(photo_folder, "locked.jpg")
  shutil.copy(os.path.join(photo_folder, "im1.jpg"), locked)
  os.chmod(locked, 0)
  try:
    with open(locked, "rb"):
      pytest.skip(
          "this process reads a chmod-000 file (root, with CAP_DAC_OVERRIDE); "
          "photo_folder's socket is the unreadable file every test has")
  except PermissionError:
    pass
  prefix = str(tmp_path / "tags")
  summary = batch_prediction.predict_to_shards(tiny_saved_model, [photo_folder], prefix,
                                               [IN_PROCESS])
  assert (summary.counters["tagged"], summary.counters["unreadable"]) == (6, 5)
  assert "Permission denied" in _failures(prefix)["locked.jpg"]


def test_beam_refuses_what_its_workers_cannot_load_or_find(tiny_trained, tiny_saved_model,
                                                           photo_folder, tmp_path):
  _, workdir, _ = tiny_trained
  with pytest.raises(ValueError, match="not an exported SavedModel.*mlc-export"):
    batch_prediction.predict_to_shards(workdir, [photo_folder], str(tmp_path / "tags"),
                                       [IN_PROCESS])
  with pytest.raises(FileNotFoundError, match="no image file found at .*\\*.png"):
    batch_prediction.predict_to_shards(tiny_saved_model, [os.path.join(photo_folder, "*.png")],
                                       str(tmp_path / "tags"), [IN_PROCESS])
  with pytest.raises(ValueError, match="smallest batch \\(8\\) is larger than the largest \\(4\\)"):
    batch_prediction.predict_to_shards(tiny_saved_model, [photo_folder], str(tmp_path / "tags"),
                                       [IN_PROCESS], min_batch_size=8, max_batch_size=4)
  assert not glob.glob(str(tmp_path / "tags*"))


def test_beam_options_without_a_runner_are_a_usage_error(tiny_saved_model, photo_folder, tmp_path):
  proc = subprocess.run([
      sys.executable, "-m", "mlc_tf.cli.predict", f"--model={tiny_saved_model}",
      f"--images={photo_folder}", f"--output={tmp_path / 'tags.csv'}", "--json_lines", "--",
      "--direct_num_workers=2"
  ], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode != 0
  assert ("--direct_num_workers=2 --json_lines: Beam's options and flags need --runner"
          in proc.stderr)
  assert not os.path.exists(tmp_path / "tags.csv")
