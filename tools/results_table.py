"""Prints the results table of docs/results.md from finished training workdirs.

  python tools/results_table.py --run="best=workdirs/best" --run="best, no label rules=workdirs/best_no_rules"

One markdown row per ``--run=LABEL=WORKDIR``, read from the ``report.json``
that ``mlc-train`` wrote there (test split): micro precision/recall/F1 and
macro F1 at the calibrated per-label thresholds, micro/macro F1 at a flat
0.5, test mAP, the epochs run (and the best one, which the model keeps) and
the seconds ``fit`` took.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

_RUNS = flags.DEFINE_multi_string("run", [], "LABEL=WORKDIR; repeat for each row.")

_HEADER = ("| run | micro P | micro R | micro F1 | macro F1 | micro F1 @0.5 | macro F1 @0.5 | mAP | epochs (best) "
           "| fit time |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def table_row(label: str, report: dict) -> str:
  cal, flat = report["at_calibrated"], report["at_0.5"]
  training = report.get("training", {})
  epochs = f"{training['epochs']} ({training['best_epoch']})" if training else "–"
  minutes = f"{training['fit_seconds'] / 60:.1f} min" if training else "–"
  return (f"| {label} | {cal['micro']['precision']:.3f} | {cal['micro']['recall']:.3f} | {cal['micro']['f1']:.3f} "
          f"| {cal['macro']['f1']:.3f} | {flat['micro']['f1']:.3f} | {flat['macro']['f1']:.3f} "
          f"| {report['average_precision']['map']:.3f} | {epochs} | {minutes} |")


def main(argv):
  del argv
  if not _RUNS.value:
    raise app.UsageError("give at least one --run=LABEL=WORKDIR")
  print(_HEADER)
  for run in _RUNS.value:
    label, sep, workdir = run.rpartition("=")
    if not sep or not label:
      raise app.UsageError(f"--run={run!r} is not LABEL=WORKDIR")
    with open(os.path.join(workdir, "report.json")) as f:
      print(table_row(label, json.load(f)))


if __name__ == "__main__":
  app.run(main)
