"""Progressive growing, the study's way to choose a depth: add conv layers while validation F1 keeps improving.

Starting from one hidden conv layer, a model of each depth is trained from
scratch on the same split (``cfg.model.depth`` is the knob; any registered
builder that reads it works). Growing stops when ``patience`` depths in a
row (the study: 1) fail to beat the best validation micro-F1 so far (at
calibrated thresholds) by at least ``margin``, at ``max_depth``, or where the
builder cannot go deeper; the chosen depth is the one that set the best. A
patience of 2 tolerates one unlucky run, which one noisy validation split and
early stopping can produce. The depth is chosen on the validation split
only; the test split's F1 is reported alongside, not used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time

import keras
import ml_collections

from mlc_tf import models
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
  gain: float | None = None  # val micro-F1 minus the best kept depth's before it (None for the first)


@dataclasses.dataclass
class Growth:
  steps: list[Step]
  best_depth: int
  stop_reason: str

  def to_markdown(self) -> str:
    lines = ["| depth | parameters | val micro-F1 | gain on best | val macro-F1 | test micro-F1 | test macro-F1 | epochs "
             "| train time (s) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for step in self.steps:
      gain = "" if step.gain is None else f"{step.gain:+.3f}"
      lines.append(f"| {step.depth}{' ←' if step.depth == self.best_depth else ''} | {step.parameters:,} | "
                   f"{step.val_micro_f1:.3f} | {gain} | {step.val_macro_f1:.3f} | {step.test_micro_f1:.3f} | "
                   f"{step.test_macro_f1:.3f} | {step.epochs} | {step.train_seconds:.1f} |")
    lines += ["", f"Chosen depth: {self.best_depth} ({self.stop_reason})"]
    return "\n".join(lines)

  def to_dict(self) -> dict:
    return {"best_depth": self.best_depth, "stop_reason": self.stop_reason,
            "steps": [dataclasses.asdict(step) for step in self.steps]}


def grow(cfg: ml_collections.ConfigDict, data_dir: str, workdir: str, margin: float = 0.01,
         start_depth: int = 1, max_depth: int = 8, patience: int = 1, verbose: int = 2,
         on_step=None) -> Growth:
  """Trains depth ``start_depth``, +1, … while validation micro-F1 improves by ``margin``; see the module doc.

  Writes ``depth_<d>/`` (what ``training.train_on`` writes) per depth and
  ``growth.md`` / ``growth.json`` into ``workdir``. ``on_step(step)`` is
  called after each depth (e.g. to print progress).
  """
  if not 1 <= start_depth <= max_depth:
    raise ValueError(f"need 1 <= start_depth ({start_depth}) <= max_depth ({max_depth})")
  if patience < 1:
    raise ValueError(f"patience must be at least 1, got {patience}")
  if "depth" not in models.registry.knobs(cfg.model.name):
    raise ValueError(f"model {cfg.model.name!r} has no depth knob to grow; its knobs: "
                     f"{', '.join(models.registry.knobs(cfg.model.name))}")
  data = split_corpus.load_and_split(data_dir, cfg)
  names = data.label_names
  y_val = data.val[names].to_numpy()
  steps, best, misses, reason = [], None, 0, f"reached max_depth {max_depth}"
  for depth in range(start_depth, max_depth + 1):
    step_cfg = ml_collections.ConfigDict(cfg.to_dict())
    step_cfg.model.depth = depth
    try:
      parameters = models.build(step_cfg.model, len(names), cfg.data.image_size, names).count_params()
    except ValueError as error:  # e.g. more pooling steps than the image has pixels
      message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())  # Keras colours its messages
      message = message.split(" Arguments received")[0]  # Keras appends the call's arguments
      reason = f"model {cfg.model.name!r} cannot be built at depth {depth} for {cfg.data.image_size}px images: " \
               f"{message[:300]}"
      break
    start = time.perf_counter()
    result = training.train_on(step_cfg, data, os.path.join(workdir, f"depth_{depth}"), verbose=verbose)
    seconds = time.perf_counter() - start
    val_micro, val_macro = metrics.micro_macro_f1(y_val, result.val.decisions)
    test = result.report["at_calibrated"]
    step = Step(depth, parameters, val_micro, val_macro, test["micro"]["f1"], test["macro"]["f1"],
                len(next(iter(result.history.values()))), seconds,
                None if best is None else val_micro - best.val_micro_f1)
    steps.append(step)
    keras.backend.clear_session()
    if on_step is not None:
      on_step(step)
    if best is None or step.val_micro_f1 >= best.val_micro_f1 + margin:
      best, misses = step, 0
      continue
    misses += 1
    if misses == patience:
      failed = f"depth {depth}" if patience == 1 else f"depths {depth - patience + 1}-{depth}"
      reason = (f"{failed} did not beat depth {best.depth}'s validation micro-F1 {best.val_micro_f1:.3f} "
                f"by the margin {margin}")
      break
  if best is None:
    raise ValueError(f"no depth could be trained: {reason}")
  growth = Growth(steps, best.depth, reason)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "growth.md"), "w") as f:
    f.write(growth.to_markdown() + "\n")
  with open(os.path.join(workdir, "growth.json"), "w") as f:
    json.dump(growth.to_dict(), f, indent=2)
  return growth
