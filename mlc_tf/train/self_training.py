"""Noisy-student self-training: a teacher's answers on untagged images join the training split as
targets.

Before training, the teacher (``config.self_training.teacher``, a workdir or
``model.keras``) answers once for every usable image of
``config.data.unlabeled``, un-augmented, through the same ``decode_and_resize``
and batched ``predict`` that training evaluates a split with. Its
probabilities (``targets="soft"``) or its decisions at its calibrated
thresholds after its label rules (``"hard"``) become those images' float
targets, and the images join the training split only. The student then trains
on them and the labelled images with the config's augmentation and dropout
(the noise); validation (thresholds, early stopping) and test (the report)
stay labelled images.

With ``config.self_training.teacher_epochs`` and no teacher given, ``mlc-train``
trains the teacher first, in the same run (``teacher_config``: the student's
config on the labelled images alone, for that many epochs), so one command does
both stages.

The teacher must have been trained on the same split (its ``config.json``
says so): a teacher that trained on the student's validation or test images
passes their labels on, and the report would flatter the student. A
different or unknown split is an error unless
``config.self_training.allow_split_mismatch``. Which corpus folder the teacher
read is not recorded (``--data_dir`` is a flag, not a config field); its label
names must be the student's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import keras
import ml_collections
import numpy as np
import pandas as pd

from mlc_tf import config as config_lib
from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import label_rules, pipeline, split_corpus, unlabeled
from mlc_tf.models import inference

TARGETS = ("soft", "hard")
AUDIT_FILE = "unlabeled_audit.json"
TEACHER_DIR = "teacher"  # <workdir>/teacher: the teacher a run with self_training.teacher_epochs
                         # trains first
# The config fields that decide which labelled images train, validate and test (beside the label
# names).
SPLIT_FIELDS = (("data", "split_seed"), ("data", "val_fraction"), ("data", "test_fraction"),
                ("data", "corrections"), ("rules", "merges"))


class SelfTrainingError(ValueError):
  """Self-training cannot run as configured; the message says which field to fix."""


def with_pseudo_labels(cfg: ml_collections.ConfigDict, data: split_corpus.SplitCorpus,
                       workdir: str | None = None) -> split_corpus.SplitCorpus:
  """Returns ``data`` with the usable images of ``cfg.data.unlabeled`` added to its training
  split, the teacher's answers as their targets (label rules applied as to the labelled ones);
  ``data.unlabeled`` summarises what joined.

  Writes ``workdir/unlabeled_audit.json`` when ``workdir`` is given, also when the audit stops the
  run.

  Raises:
    SelfTrainingError: no teacher, an unknown ``targets``, a TFDS source, a teacher with other
      labels or (unless allowed) another split.
    corpus.CorpusError: the folder cannot be used (see ``unlabeled.load_unlabeled``).
  """
  settings = cfg.self_training
  if settings.targets not in TARGETS:
    raise SelfTrainingError(f"config.self_training.targets={settings.targets!r}: expected one of "
                            f"{TARGETS}")
  if not settings.teacher:
    raise SelfTrainingError("config.data.unlabeled is set for self-training but "
                            "config.self_training.teacher is not: give the workdir (or "
                            "model.keras) of a model trained on this corpus to label the untagged "
                            "images, or "
                            "config.self_training.teacher_epochs=N to train one first in this run "
                            "(or config.calibration.adapt_to_unlabeled=True to adapt the model to "
                            "their stream instead)")
  if corpus_lib.PATH_COLUMN not in data.train:
    raise SelfTrainingError("config.data.unlabeled needs a file source (folder: or csv:): the "
                            "training images of a TFDS source are records, which untagged files "
                            "cannot join")
  teacher = _load_teacher(settings.teacher, data.label_names)
  _check_split(cfg, settings.teacher, settings.allow_split_mismatch)
  frame, audit = _audited_images(cfg, workdir)
  answers = teacher_answers(teacher, frame[corpus_lib.PATH_COLUMN].to_numpy(), cfg.train.batch_size)
  targets = answers["probabilities" if settings.targets == "soft"
                    else "decisions"].astype(np.float32)
  implications = label_rules.parse_implications(cfg.rules.implications)
  if implications and cfg.rules.to_targets:
    targets = label_rules.apply_implications(targets, data.label_names, implications)
  pseudo = pd.concat([pd.DataFrame(targets, index=frame.index, columns=data.label_names), frame],
                     axis=1)
  summary = {"folder": cfg.data.unlabeled, "teacher": settings.teacher, "targets": settings.targets,
             "image_files": audit.num_images, "drawn": audit.num_drawn, "joined": len(pseudo),
             "skipped_undecodable": len(audit.undecodable_images),
             "labelled_train": len(data.train),
             "mean_target": dict(zip(data.label_names, np.round(targets.mean(axis=0), 4).tolist()))}
  teacher_training = _teacher_training(settings.teacher)
  if teacher_training:
    summary["teacher_training"] = teacher_training
  logging.info("self-training: %d untagged images join the %d labelled training images with the "
               "teacher's %s targets (%s)", len(pseudo), len(data.train), settings.targets,
               settings.teacher)
  return dataclasses.replace(data, train=pd.concat([data.train, pseudo]), unlabeled=summary)


def teacher_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Returns the config of the teacher a student's run trains first: ``cfg`` without the untagged
  images, for ``cfg.self_training.teacher_epochs`` epochs (the learning-rate schedule spans those),
  split as the student."""
  teacher = cfg.copy_and_resolve_references()
  teacher.data.unlabeled = None
  teacher.self_training.teacher_epochs = 0
  teacher.train.epochs = cfg.self_training.teacher_epochs
  return teacher


def teacher_answers(teacher: keras.Model, paths: np.ndarray,
                    batch_size: int) -> dict[str, np.ndarray]:
  """Returns an inference model's ``probabilities`` and ``decisions`` for the images at ``paths``,
  un-augmented, in order."""
  num_labels = len(inference.decision_layer(teacher).label_names)
  ds = pipeline.make_dataset(paths, np.zeros((len(paths), num_labels), np.float32),
                             image_size=int(teacher.inputs[0].shape[1]), batch_size=batch_size,
                             training=False, cache=False).map(lambda x, y: x)
  return {name: np.asarray(value) for name, value in teacher.predict(ds, verbose=0).items()}


def _load_teacher(path: str, label_names: list[str]) -> keras.Model:
  try:
    teacher = inference.load(path)
  except FileNotFoundError as error:
    raise SelfTrainingError(f"config.self_training.teacher: {error}") from None
  teacher_names = list(inference.decision_layer(teacher).label_names)
  if teacher_names != label_names:
    raise SelfTrainingError(
        f"the teacher {path} answers for labels {teacher_names}, this run trains {label_names}: a "
        "teacher must know exactly the student's labels (same config.data.labels and rules.merges)")
  return teacher


def _teacher_training(teacher: str) -> dict | None:
  """The ``training`` record (fit time, epochs, images/s) of the teacher's report.json, where it has
  one: the student's report then tells what both stages cost."""
  path = os.path.join(teacher if os.path.isdir(teacher) else os.path.dirname(teacher),
                      "report.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f).get("training")


def _check_split(cfg: ml_collections.ConfigDict, teacher: str, allow_mismatch: bool) -> None:
  """An error (a loud warning when ``allow_mismatch``) unless the teacher's config.json splits as
  ``cfg`` does."""
  path = os.path.join(teacher if os.path.isdir(teacher) else os.path.dirname(teacher),
                      "config.json")
  if os.path.isfile(path):
    with open(path) as f:
      saved = json.load(f)
    defaults = config_lib.base_config()  # a field an older run did not save has today's default
    teacher_split = {(group, field): saved.get(group, {}).get(field, defaults[group][field])
                     for group, field in SPLIT_FIELDS}
    differences = [f"{group}.{field}: teacher {teacher_split[group, field]!r}, this run "
                   f"{cfg[group][field]!r}"
                   for group, field in SPLIT_FIELDS
                   if _plain(teacher_split[group, field]) != _plain(cfg[group][field])]
    problem = f"the teacher's split differs ({'; '.join(differences)})" if differences else None
  else:
    problem = f"{path} is missing, so the teacher's split is unknown"
  if problem is None:
    return
  risk = ("its training images may be this run's validation or test images, whose labels it would "
          "pass on")
  if not allow_mismatch:
    raise SelfTrainingError(f"{problem}: {risk}. Train the teacher on this run's split, or set "
                            "config.self_training.allow_split_mismatch=True and quote no test "
                            "figure of this run")
  logging.warning("SELF-TRAINING ON ANOTHER SPLIT: %s: %s; this run's test figures may flatter it",
                  problem, risk)


def _plain(value):
  """A config value as JSON would hold it (tuples as lists, ConfigDicts as dicts), to compare a
  saved config's."""
  if isinstance(value, ml_collections.ConfigDict):
    value = value.to_dict()
  return json.loads(json.dumps(value))


def _audited_images(cfg: ml_collections.ConfigDict, workdir: str | None):
  """The untagged images' frame and audit; the audit written into ``workdir`` and logged."""
  try:
    frame, audit = unlabeled.load_unlabeled(cfg.data.unlabeled,
                                            max_images=cfg.self_training.max_images, seed=cfg.seed,
                                            strict=cfg.data.strict)
  except corpus_lib.CorpusError as error:
    if workdir and error.audit is not None:
      _write_audit(error.audit, workdir)
    raise
  if workdir:
    _write_audit(audit, workdir)
  logging.info("untagged images %s: %d image files, %d drawn, %d kept, %d skipped as undecodable",
               cfg.data.unlabeled, audit.num_images, audit.num_drawn, audit.num_samples,
               len(audit.undecodable_images))
  for line in audit.warnings():
    logging.warning("untagged images %s: %s", cfg.data.unlabeled, line)
  return frame, audit


def _write_audit(audit: unlabeled.UnlabeledAudit, workdir: str) -> None:
  os.makedirs(workdir, exist_ok=True)
  audit.write_json(os.path.join(workdir, AUDIT_FILE))
