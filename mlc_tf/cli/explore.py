"""mlc-explore: what a corpus holds, as tables and figures, before any training.

  mlc-explore                                   # the built-in demo corpus
  mlc-explore --data_dir=../shared/datasets/flickr14 --rules=baby=>people \\
              --output_dir=workdirs/explore_flickr14

Prints label counts, images with no label, labels per image, co-occurrence,
grayscale share, image sizes and label-rule violations; writes explore.md,
explore.json, label_counts.png and cooccurrence.png to --output_dir.

  mlc-explore --data_dir=../shared/datasets/flickr14 --oof=workdirs/cv_flickr14

--oof (an mlc-cv workdir or its oof_predictions.csv) adds the label health
table: how noisy each label looks to cleanlab's confident learning.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging

from mlc_tf import config
from mlc_tf.cli import common
from mlc_tf.data import corpus, corrections, label_rules, sources
from mlc_tf.evaluate import exploration
from mlc_tf.experiments import crossval

_DATA_DIR = common.define_data_dir_flag(
    "Corpus directory (images/ + annotations/) or source spec "
    "(folder:, csv:, tfds:). Default: the built-in demo corpus.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Where tables and figures go. Default: workdirs/explore.")
_LABELS = flags.DEFINE_list("labels", None, "Labels to keep. Default: every annotation file.")
_RULES = flags.DEFINE_list(
    "rules", [], "Label implications to check, written as in config.rules.implications: "
    "'label=>implied', e.g. baby=>people ('baby>people' is still read, with a warning).")
_CORRECTIONS = flags.DEFINE_string("corrections", None,
                                   "A corrections CSV to apply first (see mlc-suspects).")
_OOF = flags.DEFINE_string(
    "oof", None, "Out-of-fold predictions of this corpus (an mlc-cv workdir or its "
    "oof_predictions.csv): adds the per-label health table.")


def main(argv):
  del argv
  data_dir = common.data_dir(_DATA_DIR.value)
  output_dir = _OUTPUT_DIR.value or os.path.join("workdirs", "explore")
  with common.exit_on_error("mlc-explore", corpus.CorpusError, ValueError, FileNotFoundError):
    rules = label_rules.parse_implications(_RULES.value)
    data_cfg = config.base_config().data
    data_cfg.labels = _LABELS.value
    source = sources.open_source(data_dir, data_cfg)
    frame, audit = corrections.apply_file(source.frame, _CORRECTIONS.value), source.audit
    oof = crossval.read_oof(_OOF.value) if _OOF.value else None
    result = exploration.explore(frame, rules, oof)
  for line in audit.warnings():
    print(f"corpus audit: {line}")
  print(result.to_markdown())
  print()
  for path in exploration.write_exploration(result, output_dir):
    print(f"wrote {path}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
