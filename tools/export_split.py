"""Writes the train/validation/test split an mlc-train run of a config makes, as image_id,split
rows.

  python tools/export_split.py --config=configs/best.py --data_dir=../shared/datasets/flickr14 \
      --config.data.val_fraction=0.15 --config.data.test_fraction=0.15 --config.data.split_seed=0 \
      --output=workdirs/split_s0.csv

The split comes from mlc_tf's own loader and splitter (``split_corpus.load_and_split``: the corpus
opened, audited, corrected and rule-merged as the config says, then split by iterative
stratification), so it is the split mlc-train trains, chooses thresholds and scores on with the same
config, data and overrides. ``split`` is one of train, val, test. tools/plain_baseline.py reads the
file through ``--split_csv``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mlc_tf.cli  # noqa: E402

mlc_tf.cli.start()  # first: TensorFlow's environment (oneDNN) as the entry points set it

# isort: split

import pandas as pd  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mlc_tf.cli import common  # noqa: E402
from mlc_tf.data import split_corpus  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", common.repo_config("best.py"),
                                          "Training config (its data).")
_DATA_DIR = common.define_data_dir_flag()
_OUTPUT = flags.DEFINE_string("output", "split.csv", "The CSV to write (image_id,split).")


def split_frame(data: split_corpus.SplitCorpus) -> pd.DataFrame:
  """image_id,split rows of a split corpus, sorted by image id."""
  parts = [pd.DataFrame({"image_id": part.index.to_numpy(), "split": name})
           for name, part in (("train", data.train), ("val", data.val), ("test", data.test))]
  return pd.concat(parts).sort_values("image_id").reset_index(drop=True)


def main(argv):
  del argv
  cfg = _CONFIG.value
  data = split_corpus.load_and_split(common.data_dir(_DATA_DIR.value, cfg.data.source), cfg)
  frame = split_frame(data)
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  frame.to_csv(_OUTPUT.value, index=False)
  counts = frame["split"].value_counts()
  print(
      f"wrote {_OUTPUT.value}: {len(frame)} images, train {counts.get('train', 0)}, "
      f"val {counts.get('val', 0)}, test {counts.get('test', 0)} (split seed {cfg.data.split_seed})"
  )


if __name__ == "__main__":
  app.run(main)
