"""mlc-predict: tag a folder or glob of images with a trained or exported model; writes a CSV.

  mlc-predict --model=workdirs/demo --images=photos/ --output=predictions.csv
  mlc-predict --model=saved_models/demo --images='photos/**/*.jpg' --probabilities --output=tags.csv

--model takes model.keras (or the training workdir holding it), an exported
SavedModel version dir, a TF Serving model dir (its highest version), or a
.tflite / .onnx file of `mlc-export --format=litert|onnx` (the same rows; a
file without mlc_tf's label metadata is refused). The
CSV has the file, one 0/1 column per label (the model's calibrated
thresholds) and, with --probabilities, prob_<label> columns. Images stream in
batches of --batch_size; unreadable files are skipped and listed with the
reason, and so are a folder's files with no image extension. The CSV appears
when the run ends (written aside, then renamed); a run that tags no image
exits with status 1 and writes nothing.

With --runner, the same rows come from an Apache Beam pipeline (the `beam`
extra; docs/serving.md): --model must be an export, --output is the prefix of
sharded CSVs, and Beam's pipeline options follow `--`:

  mlc-predict --model=saved_models/demo --images='photos/*.jpg' --output=tags/tags \
              --runner=FnApiRunner \
    -- --direct_num_workers=2 --direct_running_mode=multi_processing
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

from absl import app, flags, logging

from mlc_tf.cli import common
from mlc_tf.serving import prediction

_MODEL = flags.DEFINE_string("model", None,
                             "model.keras, a training workdir, a SavedModel (version) dir, or a "
                             ".tflite / .onnx file of mlc-export.",
                             required=True)
_IMAGES = flags.DEFINE_list("images", None, "Folders and/or glob patterns of images.",
                            required=True)
_OUTPUT = flags.DEFINE_string("output", "predictions.csv", "The CSV to write.")
_PROBABILITIES = flags.DEFINE_bool("probabilities", False, "Also write prob_<label> columns.")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Images per batch (bounds memory); with --runner, the "
    "largest batch.", lower_bound=1)
_RUNNER = flags.DEFINE_string(
    "runner", None, "Run on Apache Beam with this runner (FnApiRunner, DirectRunner, "
    "DataflowRunner, FlinkRunner, ...); Beam's pipeline options follow `--`.")
_MIN_BATCH_SIZE = flags.DEFINE_integer(
    "min_batch_size", 1, "With --runner: the smallest batch Beam's batching "
    "may choose.", lower_bound=1)
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 0,
                                   "With --runner: CSV shards to write (0: the runner chooses).",
                                   lower_bound=0)
_JSON_LINES = flags.DEFINE_bool("json_lines", False,
                                "With --runner: also write the rows as <prefix>-*.jsonl.")


def predict_on_beam(pipeline_args: list[str]) -> None:
  """Runs --runner's pipeline of mlc_tf.serving.batch_prediction, Beam's own options passed
  through untouched."""
  try:
    from mlc_tf.serving import batch_prediction  # Beam is the optional `beam` extra
  except ImportError as error:
    raise SystemExit(
        f"mlc-predict: error: --runner needs Apache Beam ({error}): pip install -e '.[beam]'"
    ) from None
  with common.exit_on_error("mlc-predict", FileNotFoundError, ValueError):
    summary = batch_prediction.predict_to_shards(_MODEL.value, _IMAGES.value, _OUTPUT.value,
                                                 [f"--runner={_RUNNER.value}", *pipeline_args],
                                                 _PROBABILITIES.value, _MIN_BATCH_SIZE.value,
                                                 _BATCH_SIZE.value, _NUM_SHARDS.value,
                                                 _JSON_LINES.value)
  counters = summary.counters
  print(
      f"tagged {counters['tagged']} image(s); {counters['invalid']} not decodable, "
      f"{counters['unreadable']} unreadable, {counters['left_out']} left out without an image name "
      "(each listed with its reason in the "
      f"failures shard); positives: "
      f"{', '.join(f'{name} {count}' for name, count in counters['positives'].items())}; "
      f"counters in {summary.counters_path}")


def main(argv):
  if _RUNNER.value:
    predict_on_beam(argv[1:])
    return
  beam_only = [
      f"--{flag.name}" for flag in (_MIN_BATCH_SIZE, _NUM_SHARDS, _JSON_LINES) if flag.present
  ]
  if len(argv) > 1 or beam_only:
    raise app.UsageError(
        f"{' '.join(argv[1:] + beam_only)}: Beam's options and flags need --runner")
  with common.exit_on_error("mlc-predict", OSError, ValueError):
    paths = prediction.list_images(_IMAGES.value)
    predictor = prediction.load_predictor(_MODEL.value)
    summary = prediction.predict_to_csv(predictor, paths, _OUTPUT.value, _BATCH_SIZE.value,
                                        _PROBABILITIES.value)
  print(f"wrote {_OUTPUT.value}: {summary.written} image(s), {len(predictor.label_names)} label(s)")
  common.print_skipped_images(summary.skipped)
  left_out = prediction.non_image_files(_IMAGES.value)
  if left_out:
    print(
        f"left out {len(left_out)} file(s) of the folder(s) "
        "without a .jpg/.jpeg/.png/.gif/.bmp name: "
        f"{common.first_ten(left_out)}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
