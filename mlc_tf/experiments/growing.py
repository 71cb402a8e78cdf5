"""Progressive growing, the Flickr study's way to choose a depth: add conv layers while validation
F1 keeps improving.

Starting from one hidden conv layer, a model of each depth is trained from
scratch on the same split (``cfg.model.depth`` is the knob; any registered
builder that reads it works). Growing stops when ``patience`` depths in a
row (the Flickr study: 1) fail to beat the best validation micro-F1 so far (at
calibrated thresholds) by at least ``margin``, at ``max_depth``, or where the
builder cannot go deeper; the chosen depth is the one that set the best. A
patience of 2 tolerates one unlucky run, which one noisy validation split and
early stopping can produce. The depth is chosen on the validation split
only; the test split's F1 is reported alongside, not used.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Callable

import keras
import ml_collections

from mlc_tf import atomic_files, markdown, models, registry
from mlc_tf.data import split_corpus
from mlc_tf.evaluate import metrics
from mlc_tf.train import training


@dataclasses.dataclass
class Step:
  depth: int
  parameters: int
  val_micro_f1: float
  val_macro_f1: float
  test_micro_f1: float
  test_macro_f1: float
  epochs: int
  train_seconds: float  # fit + threshold calibration + test evaluation
  gain: float | None = None  # val micro-F1 minus the best kept depth's before it (None for the
                             # first)


@dataclasses.dataclass
class Growth:
  steps: list[Step]
  best_depth: int
  stop_reason: str

  def to_markdown(self) -> str:
    header = ["depth", "parameters", "val micro-F1", "gain on best", "val macro-F1",
              "test micro-F1", "test macro-F1", "epochs", "train time (s)"]
    rows = [[f"{step.depth}{' ←' if step.depth == self.best_depth else ''}", f"{step.parameters:,}",
             f"{step.val_micro_f1:.3f}", "" if step.gain is None else f"{step.gain:+.3f}",
             f"{step.val_macro_f1:.3f}", f"{step.test_micro_f1:.3f}", f"{step.test_macro_f1:.3f}",
             step.epochs, f"{step.train_seconds:.1f}"]
            for step in self.steps]
    return "\n".join([*markdown.table(header, rows, align="r" * len(header)), "",
                      f"Chosen depth: {self.best_depth} ({self.stop_reason})"])

  def to_dict(self) -> dict:
    return {"best_depth": self.best_depth, "stop_reason": self.stop_reason,
            "steps": [dataclasses.asdict(step) for step in self.steps]}


def grow(cfg: ml_collections.ConfigDict, data_dir: str, workdir: str, margin: float = 0.01,
         start_depth: int = 1, max_depth: int = 8, patience: int = 1, verbose: int = 2,
         on_step: Callable[[Step], None] | None = None) -> Growth:
  """Trains depth ``start_depth``, +1, … while validation micro-F1 gains ``margin``.

  Args:
    cfg: the runs' config; each depth sets its ``model.depth``.
    data_dir: the corpus (a directory or a source spec), split once for every depth.
    workdir: gets ``depth_<d>/`` (what ``training.train_on`` writes) per depth, and ``growth.md`` /
      ``.json``.
    margin: the validation micro-F1 a depth must gain over the best so far.
    start_depth, max_depth: the first and the last depth tried.
    patience: depths in a row that may miss the margin before growing stops.
    verbose: ``model.fit``'s verbosity (``training.train_on``).
    on_step: called with each depth's ``Step`` once it is trained (e.g. to print progress).

  Returns:
    Every trained depth, the chosen one and why growing stopped.

  Raises:
    ValueError: bad bounds or patience, a model without a ``depth`` knob, or no depth could be
      built.
  """
  _check(cfg, start_depth, max_depth, patience)
  data = split_corpus.load_and_split(data_dir, cfg)
  steps, best, misses, reason = [], None, 0, f"reached max_depth {max_depth}"
  for depth in range(start_depth, max_depth + 1):
    step_cfg = ml_collections.ConfigDict(cfg.to_dict())
    step_cfg.model.depth = depth
    parameters = _parameters(step_cfg, data.label_names)
    if isinstance(parameters, str):
      reason = parameters
      break
    step = _train_step(step_cfg, data, os.path.join(workdir, f"depth_{depth}"), parameters, best,
                       verbose)
    steps.append(step)
    if on_step is not None:
      on_step(step)
    if best is None or step.val_micro_f1 >= best.val_micro_f1 + margin:
      best, misses = step, 0
      continue
    misses += 1
    if misses == patience:
      reason = _missed_margin(depth, patience, best, margin)
      break
  if best is None:
    raise ValueError(f"no depth could be trained: {reason}")
  growth = Growth(steps, best.depth, reason)
  os.makedirs(workdir, exist_ok=True)
  atomic_files.write_report(workdir, "growth", growth.to_markdown(), growth.to_dict())
  return growth


def _check(cfg: ml_collections.ConfigDict, start_depth: int, max_depth: int, patience: int) -> None:
  if not 1 <= start_depth <= max_depth:
    raise ValueError(f"need 1 <= start_depth ({start_depth}) <= max_depth ({max_depth})")
  if patience < 1:
    raise ValueError(f"patience must be at least 1, got {patience}")
  knobs = registry.knobs("model", cfg.model.name)
  if "depth" not in knobs:
    raise ValueError(f"model {cfg.model.name!r} has no depth knob to grow; its knobs: "
                     f"{', '.join(knobs)}")


def _parameters(cfg: ml_collections.ConfigDict, names: list[str]) -> int | str:
  """The model's weight count at ``cfg.model.depth``, or why it cannot be built there (Keras' error,
  cleaned)."""
  try:
    return models.build(cfg.model, len(names), cfg.data.image_size, names).count_params()
  except ValueError as error:  # e.g. more pooling steps than the image has pixels
    # Keras colours its messages
    message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())
    message = message.split(" Arguments received")[0]  # Keras appends the call's arguments
    return (f"model {cfg.model.name!r} cannot be built at depth {cfg.model.depth} for "
            f"{cfg.data.image_size}px images: {message[:300]}")


def _train_step(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus, workdir: str,
                parameters: int, best: Step | None, verbose: int) -> Step:
  """One depth trained from scratch and scored on the validation split (its gain over ``best``)."""
  start = time.perf_counter()
  result = training.train_on(cfg, data, workdir, verbose=verbose)
  seconds = time.perf_counter() - start
  val_micro, val_macro = metrics.micro_macro_f1(data.val[data.label_names].to_numpy(),
                                                result.val.decisions)
  test = result.report["at_calibrated"]
  keras.backend.clear_session()
  return Step(cfg.model.depth, parameters, val_micro, val_macro, test["micro"]["f1"],
              test["macro"]["f1"], len(next(iter(result.history.values()))), seconds,
              None if best is None else val_micro - best.val_micro_f1)


def _missed_margin(depth: int, patience: int, best: Step, margin: float) -> str:
  failed = f"depth {depth}" if patience == 1 else f"depths {depth - patience + 1}-{depth}"
  return (f"{failed} did not beat depth {best.depth}'s validation micro-F1 {best.val_micro_f1:.3f} "
          f"by the margin {margin}")
