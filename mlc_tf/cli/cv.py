"""mlc-cv: k-fold cross-validation (iterative multi-label stratification); mean ± std of every
metric.

  mlc-cv --folds=5                               # configs/demo.py on the built-in demo corpus
  mlc-cv --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 \\
         --workdir=workdirs/cv_flickr14

Trains one model per fold (k times a training run's time) and writes, into
--workdir: fold_<k>/ (each fold's model, history, report), cv_report.md,
cv_report.json and oof_predictions.csv (the input of mlc-suspects).
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.data import corpus
from mlc_tf.experiments import crossval

_TRAINING = common.TrainingFlags(workdir_prefix="cv_")
_FOLDS = flags.DEFINE_integer("folds", 5, "Number of folds.", lower_bound=2)
_EPOCH_LOGS = flags.DEFINE_bool("epoch_logs", False,
                                "Also print each epoch's log line, not only fold progress.")


def main(argv):
  del argv
  with common.exit_on_error("mlc-cv", corpus.CorpusError, ValueError):
    cfg, data_dir, workdir = _TRAINING.resolve()
    result = crossval.cross_validate(cfg, data_dir, workdir, _FOLDS.value,
                                     verbose=2 if _EPOCH_LOGS.value else 1)
  print()
  print(result.to_markdown())
  print(f"\nwrote {os.path.join(workdir, 'cv_report.md')}, cv_report.json, {crossval.OOF_FILE}")


def run():
  common.run(main, logging.WARNING)  # the progress bar is the output; per-epoch logs would bury it


if __name__ == "__main__":
  run()
