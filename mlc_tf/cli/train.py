"""mlc-train: train on a corpus, calibrate thresholds, report on the test split, export a SavedModel.

  mlc-train                                   # the built-in demo corpus, configs/demo.py
  mlc-train --config=configs/seed_final.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/flickr14 --config.train.epochs=40
  mlc-train --config.data.source=tfds:mlc_corpus --config.data.tfds_manual_dir=../shared/datasets/flickr14
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from mlc_tf import callbacks, evaluation, export, training
from mlc_tf.cli import common
from mlc_tf.data import builtin, corpus

_CONFIG = config_flags.DEFINE_config_file("config", common.repo_config("demo.py"), "Training config file.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Corpus directory (images/ + annotations/), short for "
                                "--config.data.source=folder:<dir>. Default: config.data.source, else the "
                                "built-in demo corpus, generated on first use.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where logs, the .keras model and reports go. "
                               "Default: workdirs/<export name>.")
_EXPORT = flags.DEFINE_bool("export", True, "Export a SavedModel to <config.export.base_dir>/<name>/<version>/.")


def main(argv):
  del argv
  cfg = _CONFIG.value
  if _DATA_DIR.value and cfg.data.source:
    raise app.UsageError("give either --data_dir or --config.data.source, not both")
  data_dir = _DATA_DIR.value or cfg.data.source or builtin.ensure_demo_corpus()
  workdir = _WORKDIR.value or os.path.join("workdirs", cfg.export.name)
  try:
    result = training.train(cfg, data_dir, workdir)
  except (corpus.CorpusError, callbacks.TrainingDiverged) as error:  # say what to fix, not a traceback
    raise SystemExit(f"mlc-train: error: {error}") from None
  if not result.is_chief:  # another worker of a multi-worker job: the chief reports and exports
    return
  print(evaluation.format_report(result.report))
  print(f"\nreport: {os.path.join(workdir, 'report.json')}")
  if _EXPORT.value:
    path = export.export_saved_model(result.inference_model, label_names=result.label_names,
                                     image_size=cfg.data.image_size, base_dir=cfg.export.base_dir,
                                     name=cfg.export.name, config_json=cfg.to_json_best_effort())
    print(f"exported: {path}")


def run():
  logging.set_verbosity(logging.INFO)
  app.run(main)


if __name__ == "__main__":
  run()
