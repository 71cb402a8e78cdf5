"""Written aside, then renamed: a reader sees the old file or the new one, never half of one."""

import json
import os

import pytest

from mlc_tf import atomic_files


def test_write_aside_replaces_the_file_only_when_the_write_finished(tmp_path):
  path = str(tmp_path / "sub" / "model.keras")

  def write(staged):
    assert os.path.dirname(staged) == os.path.dirname(path) and staged.endswith("model.keras")
    # the old file stays until the rename
    assert not os.path.exists(path) or open(path).read() == "old"
    with open(staged, "w") as f:
      f.write("new" if os.path.exists(path) else "old")

  assert atomic_files.write_aside(path, write) == path
  atomic_files.write_aside(path, write)
  assert open(path).read() == "new" and os.listdir(tmp_path / "sub") == ["model.keras"]


def test_a_failed_write_leaves_the_old_file_and_no_leftover(tmp_path):
  path = str(tmp_path / "epoch_001.weights.h5")
  with open(path, "w") as f:
    f.write("old")

  def half_write(staged):
    with open(staged, "w") as f:
      f.write("half")
    raise OSError("disk full")

  with pytest.raises(OSError, match="disk full"):
    atomic_files.write_aside(path, half_write)
  assert open(path).read() == "old" and os.listdir(tmp_path) == ["epoch_001.weights.h5"]


def test_a_link_or_a_directory_can_be_written_aside(tmp_path):
  os.mkdir(tmp_path / "state-1")
  os.mkdir(tmp_path / "state-2")
  link = str(tmp_path / "state")
  atomic_files.write_aside(link, lambda staged: os.symlink("state-1", staged))
  # repointed, never absent
  atomic_files.write_aside(link, lambda staged: os.symlink("state-2", staged))
  assert os.readlink(link) == "state-2"
  with atomic_files.staged_beside(str(tmp_path / "version")) as staged:
    os.makedirs(os.path.join(staged, "variables"))
  # an unpublished directory is removed
  assert sorted(os.listdir(tmp_path)) == ["state", "state-1", "state-2"]


def test_text_json_and_reports_replace_a_file_whole_keeping_its_mode(tmp_path):
  path = tmp_path / "report.json"
  path.write_text("old")
  os.chmod(path, 0o640)
  atomic_files.write_json(str(path), {"f1": 0.5})
  assert json.loads(path.read_text()) == {"f1": 0.5} and os.stat(path).st_mode & 0o777 == 0o640
  written = atomic_files.write_report(str(tmp_path), "growth", "| a |", {"best": 2})
  assert [os.path.basename(p) for p in written] == ["growth.md", "growth.json"]
  assert (tmp_path / "growth.md").read_text() == "| a |\n" and sorted(os.listdir(tmp_path)) == [
      "growth.json", "growth.md", "report.json"]  # nothing staged left behind
