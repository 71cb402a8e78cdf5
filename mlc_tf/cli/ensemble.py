"""mlc-ensemble: several training runs as one model (the mean of their probabilities), calibrated,
reported, exported.

  mlc-ensemble --members=workdirs/seed0,workdirs/seed1,workdirs/seed2 \\
               --workdir=workdirs/ensemble3 --data_dir=../shared/datasets/flickr14
               # -> saved_models/<name>_ensemble/<version>/
  mlc-ensemble --members=workdirs/a,workdirs/b --workdir=workdirs/ab --flip_average --noexport
  mlc-ensemble --members=workdirs/a --workdir=workdirs/a_flip --flip_average --noexport
               # one run's TTA

The members must be mlc-train workdirs trained on the same split (the same
corpus, split seed and fractions, corrections, image size, label rules and
calibration policy); their networks are nested unchanged in one graph. The
thresholds are chosen on the validation split and the test split is scored
as training does; --workdir gets model.keras, report.json and config.json,
so mlc-evaluate, mlc-export, mlc-calibrate and mlc-predict take it like a
training workdir. Prints the report and each member's own figures beside the
ensemble's. Serving costs about the sum of the members (twice with
--flip_average): tools/bench_serving.py --baseline=<a member> measures it.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

from absl import flags, logging

from mlc_tf.cli import common, finish
from mlc_tf.experiments import ensembles

_MEMBERS = flags.DEFINE_list("members", None,
                             "Training workdirs (model.keras + config.json), comma-separated.",
                             required=True)
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Where the ensemble's model.keras, report.json and config.json go.",
                               required=True)
_DATA_DIR = common.define_data_dir_flag(
    "The members' corpus (images/ + annotations/) or source spec. "
    "Default: their config's data.source, else the built-in demo corpus.")
_FLIP_AVERAGE = flags.DEFINE_bool(
    "flip_average", False, "Each member answers the mean over the image and its mirror "
    "image (twice the cost; members trained with it are not mirrored twice).")
_EXPORT = flags.DEFINE_bool("export", True, "Export a SavedModel to <base_dir>/<name>/<version>/.")
_NAME = flags.DEFINE_string(
    "name", None, "Model name: saved_models/<name>/, and the export.name of config.json. "
    "Default: the first member's export.name + _ensemble.")
_BASE_DIR = flags.DEFINE_string("base_dir", None,
                                "Where model folders go. Default: the config's export.base_dir.")


def main(argv):
  del argv
  # CorpusError is a ValueError
  with common.exit_on_error("mlc-ensemble", FileNotFoundError, ValueError):
    first = ensembles.read_configs(_MEMBERS.value, _FLIP_AVERAGE.value)[0]
    ensemble = ensembles.build(_MEMBERS.value, common.data_dir(_DATA_DIR.value,
                                                               first.data.source), _WORKDIR.value,
                               flip_average=_FLIP_AVERAGE.value, export_name=_NAME.value)
  finish.report_and_export(ensemble.report, _WORKDIR.value, ensemble.inference_model,
                           ensemble.config, _EXPORT.value, base_dir=_BASE_DIR.value,
                           details=ensembles.format_comparison(ensemble.report))


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
