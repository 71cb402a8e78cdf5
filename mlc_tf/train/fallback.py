"""A cheaper network to train when the time budget holds too few epochs of the configured one.

A network can be too slow for its budget on some machines (best.py's holds
40 epochs in an hour on a CPU with AMX, about 12 on one with AVX2 only).
``config.train.fallback`` names a cheaper one as changes to the config: when
the budget holds fewer than ``below_epochs`` epochs of the configured
network, as measured a few steps into its first epoch (``NetworkTooSlow``,
from ``budget.TimeBudget``), the run trains the fallback instead, in the same
workdir and inside the same deadline (``budget.Budget.fall_back``). The
decision is written to the workdir (``FALLBACK_FILE``): a resumed run trains
the fallback again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import ml_collections

from mlc_tf import atomic_files
from mlc_tf import config as config_lib

FALLBACK_FILE = "budget_fallback.json"  # the fallback taken, and why: a resumed run trains it again


class NetworkTooSlow(RuntimeError):
  """The budget holds fewer epochs of the configured network than ``train.fallback.below_epochs``.

  Raised inside the fit, a few steps into its first epoch: it ends the fit at once, before any
  epoch's validation, checkpoint or backup is spent on a network that will not be kept.
  """

  def __init__(self, projected_epochs: int, below_epochs: int, images_per_second: float):
    super().__init__(f"the budget holds about {projected_epochs} epochs of this network at the "
                     f"{images_per_second:.1f} training images/s measured, fewer than "
                     f"config.train.fallback.below_epochs={below_epochs}")
    self.projected_epochs, self.below_epochs = projected_epochs, below_epochs
    self.images_per_second = images_per_second


def with_changes(cfg: ml_collections.ConfigDict, changes: dict) -> ml_collections.ConfigDict:
  """Returns ``cfg`` with ``changes`` (nested config sections) merged in, and no further fallback.

  Raises:
    config.ConfigError: ``changes`` names a key ``cfg`` does not have, or gives a value of the wrong
      type.
  """
  merged = cfg.copy_and_resolve_references()
  merged.lock()
  try:
    merged.update(changes)
  except (AttributeError, KeyError, TypeError) as error:
    raise config_lib.ConfigError(f"config.train.fallback.changes={changes!r} cannot apply to this "
                                 f"config: {error}") from error
  merged.train.fallback.below_epochs = 0
  return merged


def check(cfg: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` where ``config.train.fallback`` cannot apply: said before any data is
  read."""
  fallback = cfg.train.get("fallback")
  if fallback and fallback.below_epochs:
    with_changes(cfg, fallback.changes.to_dict())


def taken(workdir: str) -> dict | None:
  """Reads the fallback an earlier call of this run took (``FALLBACK_FILE``), or None."""
  path = os.path.join(workdir, FALLBACK_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def fall_back(cfg: ml_collections.ConfigDict, workdir: str,
              slow: NetworkTooSlow) -> tuple[ml_collections.ConfigDict, dict]:
  """Returns the fallback's config and the decision, written to ``FALLBACK_FILE``; clears the slow
  network's state.

  The configured network ran a few steps of its first epoch: nothing of it is worth keeping, and its
  backup would resume the wrong network.
  """
  changes = cfg.train.fallback.changes.to_dict()
  fallback = with_changes(cfg, changes)
  decision = {"reason": str(slow), "projected_epochs": slow.projected_epochs,
              "below_epochs": slow.below_epochs,
              "measured_images_per_second": slow.images_per_second, "changes": changes}
  logging.warning("budget: %s; training config.train.fallback instead: %s", slow, changes)
  shutil.rmtree(os.path.join(workdir, "backup"), ignore_errors=True)
  if os.path.exists(os.path.join(workdir, "history.csv")):
    os.remove(os.path.join(workdir, "history.csv"))
  atomic_files.write_json(os.path.join(workdir, FALLBACK_FILE), decision)
  return fallback, decision
