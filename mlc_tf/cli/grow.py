"""mlc-grow: progressive growing; add conv layers while validation F1 improves by --margin.

  mlc-grow --margin=0.01                          # configs/demo.py on the built-in demo corpus
  mlc-grow --config=configs/flickr14.py --data_dir=../shared/datasets/flickr14 \\
           --workdir=workdirs/grow_flickr14

Trains config.model (any builder with a depth knob) at depth 1, 2, … on one
fixed split and prints depth vs validation/test F1 vs train time; each depth
costs about one training run. Writes depth_<d>/, growth.md and growth.json.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.data import corpus
from mlc_tf.experiments import growing

_TRAINING = common.TrainingFlags(workdir_prefix="grow_")
_MARGIN = flags.DEFINE_float("margin", 0.01,
                             "Least gain in validation micro-F1 that justifies one more layer.")
_START = flags.DEFINE_integer("start_depth", 1, "Depth to start from.", lower_bound=1)
_MAX = flags.DEFINE_integer("max_depth", 8, "Depth to stop at in any case.", lower_bound=1)
_PATIENCE = flags.DEFINE_integer(
    "patience", 1, "Depths in a row without a --margin gain before stopping "
    "(1: the Flickr study's rule).", lower_bound=1)


def main(argv):
  del argv
  with common.exit_on_error("mlc-grow", ValueError):
    cfg, data_dir, workdir = _TRAINING.resolve()

  def report(step: growing.Step) -> None:
    print(
        f"depth {step.depth}: val micro-F1 {step.val_micro_f1:.3f}, "
        f"{step.parameters:,} parameters, "
        f"{step.epochs} epochs, {step.train_seconds:.0f} s", flush=True)

  with common.exit_on_error("mlc-grow", corpus.CorpusError, ValueError):
    growth = growing.grow(cfg, data_dir, workdir, _MARGIN.value, _START.value, _MAX.value,
                          _PATIENCE.value, verbose=0, on_step=report)
  print()
  print(growth.to_markdown())
  print(f"\nwrote {os.path.join(workdir, 'growth.md')}, growth.json")


def run():
  common.run(main, logging.WARNING)


if __name__ == "__main__":
  run()
