"""mlc-calibrate: set a trained model's operating points again, optionally for a stream with another
label mix.

  mlc-calibrate --model=workdirs/flickr14 --data_dir=../shared/datasets/flickr14 \\
                --policy=f1 --policy=people=precision:0.9
                # thresholds chosen on the validation split
  mlc-calibrate --model=workdirs/flickr14 --data_dir=../shared/datasets/flickr14 \\
                --target_images=photos/ --prevalence=stream_prevalence.csv
                # or --prevalence=estimate: the share with no label by PU learning
  mlc-calibrate --model=saved_models/flickr14 --data_dir=../shared/datasets/flickr14 --policy=f1
                # an export (its highest version), as a deployment has it: no workdir needed

No retraining: the trained network (a workdir's model.keras, or an export's
own graph through ``keras.layers.TFSMLayer``) is wrapped again with new per-label
thresholds (and, for a stream, a ``PriorShift`` layer that adapts its
probabilities to the stream's prevalences, and with an estimated untagged
part a ``TaggedGate`` that multiplies them by P(tagged | photo),
mlc_tf/evaluate/untagged.py) and exported as the next version
of saved_models/<name>/ (never overwriting one). The report (printed, and in
the export's assets.extra/calibration.md and .json) gives each label's
threshold with the precision and recall to expect (95 % bootstrap interval),
says which targets cannot be met, puts each label's and no label's predicted
share of the stream beside the expected one, and compares micro P/R/F1 on the
labelled test split at the model's old and new operating points. Policies and
the maths: mlc_tf/evaluate/operating_points.py.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import json
import os

import keras
import ml_collections
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from mlc_tf import factory
from mlc_tf.cli import common
from mlc_tf.data import builtin, corpus
from mlc_tf.evaluate import operating_points, reports, scoring, untagged
from mlc_tf.models import inference
from mlc_tf.serving import export, prediction

_MODEL = flags.DEFINE_string(
    "model", None,
    "A trained model: a training workdir or its model.keras, or an export (a SavedModel, or "
    "saved_models/<name>/ for its highest version).", required=True)
_DATA_DIR = common.define_data_dir_flag(
    "The run's corpus (images/ + annotations/) or source spec: its split is "
    "rebuilt for the training prior and the labelled images. "
    "Default: the config's data.source, else the built-in demo corpus.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None,
    "Config that defines the split. Default: config.json next to the model, or the one an "
    "export carries.")
_SPLIT = flags.DEFINE_enum("split", "val", reports.SPLITS,
                           "The labelled images the thresholds are chosen on.")
_POLICY = flags.DEFINE_multi_string(
    "policy", None,
    "f1 | precision:P | recall:R | share (stream only) | a fixed threshold; 'label=policy' for "
    "one label. Repeatable. Default: the config's calibration.policy.")
_TARGET_IMAGES = flags.DEFINE_list(
    "target_images", None, "Folders and/or globs of untagged photos of the stream to adapt to.")
_PREVALENCE = flags.DEFINE_string(
    "prevalence", None,
    "With --target_images: a CSV 'label,prevalence' (fractions of the stream's photos; "
    f"an optional '{operating_points.NO_LABEL}' row is the share with no label), "
    "or 'estimate' (EM on the "
    "target photos). Default: estimate.")
_NAME = flags.DEFINE_string("name", None,
                            "Model name: saved_models/<name>/. Default: the config's export.name.")
_BASE_DIR = flags.DEFINE_string("base_dir", None,
                                "Where model folders go. Default: the config's export.base_dir.")
_BOOTSTRAP_SAMPLES = flags.DEFINE_integer("bootstrap_samples", 1000, "Resamples for the intervals.",
                                          lower_bound=10)
_ESTIMATE_UNTAGGED = flags.DEFINE_boolean(
    "estimate_untagged", True,
    "With --prevalence=estimate: first estimate the stream's share of photos with no label by "
    "positive-unlabelled learning (labelled --split photos vs the target photos) and gate the "
    "export's probabilities by P(tagged | photo); the tagged part keeps the training label mix. "
    "--noestimate_untagged: EM alone, as if every stream photo were tagged.")
_MIN_TARGET_IMAGES = flags.DEFINE_integer(
    "min_target_images", untagged.MIN_STREAM_PHOTOS,
    "The fewest readable target photos --prevalence=estimate estimates from (the untagged share, "
    "and EM alone).", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Target photos per batch (bounds memory).",
                                   lower_bound=1)


def _estimating() -> bool:
  return _PREVALENCE.value in (None, "estimate")


def _target_paths() -> list[str]:
  """The target photos' paths ([] without --target_images), checked before any work: too few to
  estimate from, or a prevalence path that is not a file, is an error."""
  if not _TARGET_IMAGES.value:
    return []
  if not _estimating() and not os.path.isfile(_PREVALENCE.value):
    raise ValueError(f"--prevalence={_PREVALENCE.value}: not a file (a CSV 'label,prevalence', "
                     "or 'estimate')")
  paths = prediction.list_images(_TARGET_IMAGES.value)
  if _estimating():
    operating_points.check_stream_size(len(paths), _MIN_TARGET_IMAGES.value)
  return paths


def _stream(model, paths, label_names, train_prior, labelled_probs,
            seed) -> operating_points.Stream | None:
  """The target photos' probabilities and prevalences, or None without target photos."""
  if not paths:
    return None
  logging.info("predicting %d target photos", len(paths))
  done, probs = [], []
  for batch_paths, batch_probs, _ in prediction.KerasPredictor(model).predict(
      paths, _BATCH_SIZE.value):
    done += batch_paths
    probs.append(batch_probs)
  if not done:
    raise ValueError(f"none of the {len(paths)} target file(s) is a readable image")
  skipped = sorted(set(paths) - set(done))
  if skipped:
    logging.warning("skipped %d target file(s) that are not readable images", len(skipped))
  probs = np.concatenate(probs)
  if _estimating():
    stream = operating_points.estimate_stream(
        probs, train_prior, labelled_probs if _ESTIMATE_UNTAGGED.value else None, seed=seed,
        min_stream_photos=_MIN_TARGET_IMAGES.value)
    stream.skipped = skipped
    return stream
  read = operating_points.read_prevalence(_PREVALENCE.value, label_names, train_prior)
  if read.missing:
    logging.warning("%s lacks %s: kept at the training prior", _PREVALENCE.value,
                    ", ".join(read.missing))
  return operating_points.Stream(probs, read.values, _PREVALENCE.value, read.missing, read.no_label,
                                 skipped)


def _load(path: str) -> tuple[keras.Model, ml_collections.ConfigDict, int]:
  """(The inference model at ``path``, its training config, the export's pixel limit to keep)."""
  export_dir = prediction.saved_model_dir(path)
  if export_dir:
    model, metadata = export.inference_model_from_export(export_dir)
    if _CONFIG.value is None and not metadata["config"]:
      raise ValueError(
          f"{export_dir} carries no training config; pass --config so the split can be rebuilt")
    cfg = factory.run_config(metadata["config"],
                             export_dir) if _CONFIG.value is None else _CONFIG.value
    return model, cfg, metadata["max_image_pixels"]
  config_path = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "config.json")
  if _CONFIG.value is None and not os.path.isfile(config_path):
    raise ValueError(
        f"{config_path} not found; pass --config (the training config) so the split can be rebuilt")
  cfg = factory.load_run_config(config_path) if _CONFIG.value is None else _CONFIG.value
  return inference.load(path), cfg, export.MAX_IMAGE_PIXELS


def _corpus(model: keras.Model, cfg: ml_collections.ConfigDict) -> str:
  """--data_dir, else the config's data.source, else the built-in demo corpus if the model tags
  its labels; a model of another corpus trained with --data_dir (which its config does not keep)
  needs --data_dir."""
  names = inference.decision_layer(model).label_names
  if not (_DATA_DIR.value or cfg.data.source) and tuple(names) != builtin.LABELS:
    raise ValueError(
        f"--data_dir is needed: {_MODEL.value} tags {', '.join(names)}, not the built-in demo "
        "corpus's labels, and its training config names no corpus (mlc-train's --data_dir is "
        "not kept in it); pass the corpus it was trained on")
  return common.data_dir(_DATA_DIR.value, cfg.data.source)


def main(argv):
  del argv
  if _PREVALENCE.value and not _TARGET_IMAGES.value:
    raise SystemExit(
        "mlc-calibrate: error: --prevalence needs --target_images (the stream's photos)")
  if not os.path.exists(_MODEL.value):
    raise SystemExit(
        f"mlc-calibrate: error: no model at {_MODEL.value} (a training workdir, its model.keras, "
        "or an export)")
  # CorpusError is a ValueError
  with common.exit_on_error("mlc-calibrate", FileNotFoundError, ValueError):
    target_paths = _target_paths()
    model, cfg, max_image_pixels = _load(_MODEL.value)
    data_dir = _corpus(model, cfg)
    parts = scoring.recalibration(model, cfg, data_dir)
    names, current, implications = parts.label_names, parts.thresholds, parts.implications
    data, plain, train_prior = parts.data, parts.plain, parts.train_prior
    policies = operating_points.parse_policies(_POLICY.value or cfg.calibration.policy, names)
    labelled = reports.split_frame(data, _SPLIT.value)

    def probabilities(frame):
      return reports.predict_answers(plain, frame, names, cfg, data.source).probabilities

    labelled_probs = probabilities(labelled)
    stream = _stream(plain, target_paths, names, train_prior, labelled_probs, cfg.seed)

    # a final fit (data.test_fraction=0): nothing to compare the operating points on
    if data.test.empty:
      logging.warning(
          "no test split (a final fit): the old and new operating points are not compared")
    points, report = operating_points.calibrate(
        labelled[names].to_numpy(), labelled_probs, policies, names, train_prior, stream,
        implications, test=None if data.test.empty else
        (data.test[names].to_numpy(), probabilities(data.test), current),
        samples=_BOOTSTRAP_SAMPLES.value, seed=cfg.seed)
  report.update(model=_MODEL.value, split=_SPLIT.value)
  text = operating_points.format_report(report)
  adapted = scoring.adapted_model(inference.network(model), names, points.thresholds,
                                 implications, stream, train_prior)
  cfg.calibration.policy = tuple(_POLICY.value or cfg.calibration.policy)
  path = export.export_saved_model(
      adapted, base_dir=_BASE_DIR.value or cfg.export.base_dir, name=_NAME.value or cfg.export.name,
      config_json=cfg.to_json_best_effort(), max_image_pixels=max_image_pixels, extra_assets={
          "calibration.md": text + "\n", "calibration.json": json.dumps(report, indent=2)
      }, warmup_photos=corpus.sample_images(data_dir, export.WARMUP_PHOTOS))
  print(text)
  print(f"\nexported: {path}")


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
