"""Written aside, then renamed: a reader sees the old file or the new one, never half of one."""

import os

import pytest

from mlc_tf import atomic_files


def test_write_aside_replaces_the_file_only_when_the_write_finished(tmp_path):
  path = str(tmp_path / "sub" / "model.keras")

  def write(staged):
    assert os.path.dirname(staged) == os.path.dirname(path) and staged.endswith("model.keras")
    assert not os.path.exists(path) or open(path).read() == "old"  # the old file stays until the rename
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
  atomic_files.write_aside(link, lambda staged: os.symlink("state-2", staged))  # repointed, never absent
  assert os.readlink(link) == "state-2"
  with atomic_files.staged_beside(str(tmp_path / "version")) as staged:
    os.makedirs(os.path.join(staged, "variables"))
  assert sorted(os.listdir(tmp_path)) == ["state", "state-1", "state-2"]  # an unpublished directory is removed
