"""mlc-cv: k-fold cross-validation (iterative multi-label stratification); mean ± std of every metric.

  mlc-cv --folds=5                               # configs/demo.py on the built-in demo corpus
  mlc-cv --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 --workdir=workdirs/cv_flickr14

Trains one model per fold (k times a training run's time) and writes, into
--workdir: fold_<k>/ (each fold's model, history, report), cv_report.md,
cv_report.json and oof_predictions.csv (the input of mlc-suspects).
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from mlc_tf import crossval
from mlc_tf.cli import common
from mlc_tf.data import builtin, corpus

_CONFIG = config_flags.DEFINE_config_file("config", common.repo_config("demo.py"), "Training config file.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Corpus directory (images/ + annotations/) or source spec. "
                                "Default: config.data.source, else the built-in demo corpus.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Default: workdirs/cv_<export name>.")
_FOLDS = flags.DEFINE_integer("folds", 5, "Number of folds.", lower_bound=2)
_EPOCH_LOGS = flags.DEFINE_bool("epoch_logs", False, "Also print each epoch's log line, not only fold progress.")


def main(argv):
  del argv
  cfg = _CONFIG.value
  data_dir = _DATA_DIR.value or cfg.data.source or builtin.ensure_demo_corpus()
  workdir = _WORKDIR.value or os.path.join("workdirs", f"cv_{cfg.export.name}")
  try:
    result = crossval.cross_validate(cfg, data_dir, workdir, _FOLDS.value, verbose=2 if _EPOCH_LOGS.value else 1)
  except (corpus.CorpusError, ValueError) as error:
    raise SystemExit(f"mlc-cv: error: {error}") from None
  print()
  print(result.to_markdown())
  print(f"\nwrote {os.path.join(workdir, 'cv_report.md')}, cv_report.json, {crossval.OOF_FILE}")


def run():
  logging.set_verbosity(logging.WARNING)  # the progress bar is the output; per-epoch logs would bury it
  app.run(main)


if __name__ == "__main__":
  run()
