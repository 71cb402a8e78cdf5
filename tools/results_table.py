"""Prints the results tables of docs/results.md from finished training workdirs.

  python tools/results_table.py --run="best=workdirs/best" --run="best, no label
  rules=workdirs/best_no_rules" python tools/results_table.py
  --run="baseline=runs/base_s0,runs/base_s1" --run="+ EMA=runs/ema_s0,runs/ema_s1"

One markdown row per ``--run=LABEL=WORKDIR[,WORKDIR...]``, read from the
``report.json`` that ``mlc-train`` wrote there (test split): micro
precision/recall/F1 and macro F1 at the calibrated per-label thresholds,
micro/macro F1 at a flat 0.5, test mAP, the epochs run (and the best one,
which the model keeps), the minutes ``fit`` took and the training images per
second of that time. A row of several workdirs (other split seeds or
training seeds of one recipe) shows each figure's mean ± standard deviation
over them, and mean epochs and times.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags

_RUNS = flags.DEFINE_multi_string("run", [], "LABEL=WORKDIR[,WORKDIR...]; repeat for each row.")

_HEADER = (
    "| run | micro P | micro R | micro F1 | macro F1 | micro F1 @0.5 | macro F1 @0.5 | mAP | "
    "epochs (best) "
    "| fit time | img/s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _quality(report: dict) -> list[float]:
  cal, flat = report["at_calibrated"], report["at_0.5"]
  return [cal["micro"]["precision"], cal["micro"]["recall"], cal["micro"]["f1"], cal["macro"]["f1"],
          flat["micro"]["f1"], flat["macro"]["f1"], report["average_precision"]["map"]]


def table_row(label: str, reports: list[dict]) -> str:
  """One row: a run's figures, or the mean ± standard deviation of several runs' figures."""
  values = np.array([_quality(report) for report in reports])
  if len(reports) == 1:
    cells = [f"{v:.3f}" for v in values[0]]
  else:
    cells = [f"{mean:.3f} ± {std:.3f}" for mean, std in zip(values.mean(0), values.std(0))]
  trainings = [report.get("training") for report in reports]
  if all(trainings):
    def mean_of(key):
      return np.mean([training[key] for training in trainings])
    epochs = (f"{trainings[0]['epochs']} ({trainings[0]['best_epoch']})" if len(reports) == 1
              else f"{mean_of('epochs'):.0f} ({mean_of('best_epoch'):.1f})")
    cells += [epochs, f"{mean_of('fit_seconds') / 60:.1f} min"]
    speeds = [training.get("images_per_second") for training in trainings]
    cells.append(f"{np.mean(speeds):.0f}" if all(speeds) else "–")
  else:
    cells += ["–", "–", "–"]
  return f"| {label} | " + " | ".join(cells) + " |"


def main(argv):
  del argv
  if not _RUNS.value:
    raise app.UsageError("give at least one --run=LABEL=WORKDIR")
  print(_HEADER)
  for run in _RUNS.value:
    label, sep, workdirs = run.rpartition("=")
    if not sep or not label:
      raise app.UsageError(f"--run={run!r} is not LABEL=WORKDIR[,WORKDIR...]")
    reports = []
    for workdir in workdirs.split(","):
      with open(os.path.join(workdir, "report.json")) as f:
        reports.append(json.load(f))
    print(table_row(label, reports))


if __name__ == "__main__":
  app.run(main)
