"""mlc-evaluate: judge a trained model on a corpus split; markdown + JSON report and figures.

  mlc-evaluate            # workdirs/demo (what mlc-train wrote) on its test split
  mlc-evaluate --model=workdirs/flickr14 --data_dir=../shared/datasets/flickr14
  mlc-evaluate --model=workdirs/flickr14/model.keras --data_dir=/path/to/new/images --split=all

The split is rebuilt from the config.json that training left next to the
model (or --config), so "test" means the images that run never trained on.
Reports per-label precision/recall/F1/support/AP, micro/macro/samples F1, mAP,
exact-match ratio and Hamming loss at 0.5 and at the model's calibrated
thresholds, and writes report.md, report.json and the figures to --output_dir.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging
from ml_collections import config_flags

from mlc_tf import factory
from mlc_tf.cli import common
from mlc_tf.data import split_corpus
from mlc_tf.evaluate import metrics, reports
from mlc_tf.models import inference

_MODEL = flags.DEFINE_string("model", os.path.join("workdirs", "demo"),
                             "A trained model: model.keras, or the training workdir that holds it.")
_DATA_DIR = common.define_data_dir_flag(
    "Corpus directory (images/ + annotations/) or source spec. "
    "Default: the config's data.source, else the built-in demo corpus.")
_SPLIT = flags.DEFINE_enum("split", "test", reports.SPLITS,
                           "Which part of the corpus to evaluate on.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config that defines the split. Default: config.json next to the model.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Default: <model dir>/evaluation_<split>.")


def main(argv):
  del argv
  model_dir = _MODEL.value if os.path.isdir(_MODEL.value) else os.path.dirname(_MODEL.value)
  cfg = _CONFIG.value
  if cfg is None:
    saved = os.path.join(model_dir, "config.json")
    if not os.path.isfile(saved):
      raise SystemExit(
          f"mlc-evaluate: error: {saved} not found; pass --config (the training config) "
          "so the split can be rebuilt")
    cfg = factory.load_run_config(saved)
  data_dir = common.data_dir(_DATA_DIR.value, cfg.data.source)
  # CorpusError is a ValueError
  with common.exit_on_error("mlc-evaluate", FileNotFoundError, ValueError):
    model = inference.load(_MODEL.value)
    thresholds_layer = inference.decision_layer(model)
    cfg.data.labels = thresholds_layer.label_names  # the model's label columns, in its order
    data = split_corpus.load_and_split(data_dir, cfg)
    frame = reports.split_frame(data, _SPLIT.value)
  answers = reports.predict_answers(model, frame, thresholds_layer.label_names, cfg, data.source)
  output_dir = _OUTPUT_DIR.value or os.path.join(model_dir, f"evaluation_{_SPLIT.value}")
  result, written = reports.write_evaluation(output_dir, frame, answers,
                                             thresholds_layer.thresholds.numpy(),
                                             thresholds_layer.label_names, _SPLIT.value,
                                             history_csv=os.path.join(model_dir, "history.csv"),
                                             seed=cfg.seed, source=data.source,
                                             implications=inference.implications(model))
  print(metrics.format_report(result, _SPLIT.value))
  print()
  for path in written:
    print(f"wrote {path}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
