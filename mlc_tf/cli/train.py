"""mlc-train: train on a corpus, calibrate thresholds, report on the test split, export a
SavedModel.

  mlc-train                                   # the built-in demo corpus, configs/demo.py
  mlc-train --config=configs/seed_final.py --data_dir=../shared/datasets/flickr14 \
            --workdir=workdirs/flickr14 --config.train.epochs=40
  mlc-train --config.data.source=tfds:mlc_corpus \
            --config.data.tfds_manual_dir=../shared/datasets/flickr14
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

from absl import app, flags, logging

from mlc_tf import config as config_lib
from mlc_tf.cli import common, finish
from mlc_tf.data import corpus
from mlc_tf.evaluate import operating_points
from mlc_tf.train import budget, callbacks, self_training, training

_TRAINING = common.TrainingFlags(
    workdir_help="Where logs, the .keras model and reports go. ", data_dir_help=
    "Corpus directory (images/ + annotations/), short for --config.data.source=folder:<dir>. "
    "Default: config.data.source, else the built-in demo corpus, generated on first use.")
_EXPORT = flags.DEFINE_bool("export", True,
                            "Export a SavedModel to <config.export.base_dir>/<name>/<version>/.")


def main(argv):
  del argv
  if _TRAINING.data_dir.value and _TRAINING.config.value.data.source:
    raise app.UsageError("give either --data_dir or --config.data.source, not both")
  with common.exit_on_error("mlc-train", corpus.CorpusError, callbacks.TrainingDiverged,
                            self_training.SelfTrainingError, config_lib.ConfigError,
                            budget.BudgetTooSmall):
    cfg, data_dir, workdir = _TRAINING.resolve()
    result = training.train(cfg, data_dir, workdir, started=cli.STARTED)
  if not result.is_chief:  # another worker of a multi-worker job: the chief reports and exports
    return
  stream = result.report.get("stream")
  finish.report_and_export(
      result.report, workdir, result.inference_model, result.config, _EXPORT.value,
      details=operating_points.format_report(stream["calibration"]) if stream and stream["adapted"]
      else "")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
