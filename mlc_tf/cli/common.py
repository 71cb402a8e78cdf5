"""Flag helpers shared by the absl entry points (only cli/ reads flags)."""

from __future__ import annotations

import os

import mlc_tf


def repo_config(name: str) -> str:
  """Path of ``configs/<name>`` in the source tree the package was installed from."""
  return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(mlc_tf.__file__))), "configs", name)
