"""mlc-suspects: find likely wrong labels with out-of-fold predictions; a review CSV and a contact
sheet.

  mlc-suspects            # demo corpus; runs 5-fold CV into workdirs/cv_demo first
  mlc-suspects --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 \
               --cv_workdir=workdirs/cv_flickr14 --top=200

Reuses --cv_workdir's oof_predictions.csv when mlc-cv already wrote it (else
runs mlc-cv's cross-validation there: k training runs). Writes suspects.csv,
whose first columns (image_id,label,action) make it a corrections file: delete
the rows the model got wrong, then train with --config.data.corrections=<file>.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.data import corpus
from mlc_tf.evaluate import suspects
from mlc_tf.experiments import crossval

_TRAINING = common.TrainingFlags(workdir_prefix="cv_", workdir_flag="cv_workdir",
                                 workdir_help="Cross-validation workdir. ")
_FOLDS = flags.DEFINE_integer("folds", 5, "Folds, when cross-validation has to run.", lower_bound=2)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: <cv_workdir>/suspects.")
_MIN_MARGIN = flags.DEFINE_float(
    "min_margin", 2.0, "How far past the fold model's threshold, in logits, the "
    "out-of-fold prediction must contradict the given label.")
_TOP = flags.DEFINE_integer("top", None, "Keep only the most confident rows.")


def main(argv):
  del argv
  with common.exit_on_error("mlc-suspects", corpus.CorpusError, ValueError):
    cfg, data_dir, cv_workdir = _TRAINING.resolve()
    if os.path.isfile(os.path.join(cv_workdir, crossval.OOF_FILE)):
      print(f"using the out-of-fold predictions in {cv_workdir}")
      oof = crossval.read_oof(cv_workdir)
      names = [c[len("prob_"):] for c in oof.columns if c.startswith("prob_")]
    else:
      result = crossval.cross_validate(cfg, data_dir, cv_workdir, _FOLDS.value)
      oof, names = result.oof, result.label_names
    ranked, written = suspects.write_suspects(
        oof, names, _OUTPUT_DIR.value or os.path.join(cv_workdir, "suspects"), _MIN_MARGIN.value,
        _TOP.value)
  print(
      f"{len(ranked)} suspect label(s) on {ranked['image_id'].nunique()} image(s); most confident:")
  print(ranked.head(15).drop(columns=["path"], errors="ignore").to_string(index=False))
  for path in written:
    print(f"wrote {path}")


def run():
  common.run(main, logging.WARNING)


if __name__ == "__main__":
  run()
