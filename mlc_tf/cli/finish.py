"""What mlc-train and mlc-ensemble do with a finished model: print its report, export it as a
SavedModel.

Not in ``common``: that module is imported by every entry point, and the
export and predict entry points load no evaluation code (tests/test_architecture.py).
"""

from __future__ import annotations

import os

import keras
import ml_collections

from mlc_tf.data import corpus
from mlc_tf.evaluate import metrics
from mlc_tf.serving import export


def report_and_export(report: dict, workdir: str, inference_model: keras.Model,
                      cfg: ml_collections.ConfigDict, export_model: bool,
                      base_dir: str | None = None, details: str = "") -> None:
  """Prints ``report`` (and ``details`` under it), where report.json is, and exports when
  ``export_model``.

  The SavedModel goes to ``<base_dir or cfg.export.base_dir>/<cfg.export.name>/<next version>/``.

  Args:
    report: the model's ``metrics.evaluate`` report, with its ``split``.
    workdir: the run's workdir, which holds report.json.
    inference_model: the model to export.
    cfg: the training config (export name and base dir; saved with the export).
    export_model: whether to export.
    base_dir: overrides ``cfg.export.base_dir`` when set.
    details: text printed under the report; none by default.
  """
  print(metrics.format_report(report, report["split"]))
  if details:
    print(f"\n{details}")
  print(f"\nreport: {os.path.join(workdir, 'report.json')}")
  if export_model:
    path = export.export_saved_model(
        inference_model, base_dir=base_dir or cfg.export.base_dir, name=cfg.export.name,
        config_json=cfg.to_json_best_effort(),
        warmup_photos=corpus.training_photos(workdir, export.WARMUP_PHOTOS))
    print(f"exported: {path}")
