"""Ensembles: several training runs' networks as one model, calibrated and reported as a training
run is.

``build`` takes the workdirs of runs trained on the same split (``mlc-train``
with other seeds, recipes or models), averages their networks' probabilities
inside one graph (``inference.ensemble``, each member optionally averaged
over the mirror image too), chooses the thresholds on the validation split
and scores the test split with training's own code (``scoring.wrap_and_score``),
and writes a workdir as training does (model.keras, report.json,
config.json): mlc-evaluate, mlc-export, mlc-calibrate and mlc-predict take it
as they take a training workdir.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import ml_collections

from mlc_tf import factory, markdown
from mlc_tf.data import split_corpus
from mlc_tf.evaluate import scoring
from mlc_tf.models import inference
from mlc_tf.train import training

# What decides which images each split holds, their targets, the input size and how thresholds are
# chosen: members that differ in any of these were not calibrated and tested on the same images.
SPLIT_FIELDS = ("data.source", "data.tfds_data_dir", "data.split_seed", "data.val_fraction",
                "data.test_fraction", "data.corrections", "data.image_size", "rules.merges",
                "rules.implications", "rules.to_targets", "calibration.policy")
# Each member's own figures, from its report.json, beside the ensemble's: key -> (table title, path
# in a report).
FIGURES = {"micro_f1": ("micro F1 @cal", ("at_calibrated", "micro", "f1")),
           "macro_f1": ("macro F1 @cal", ("at_calibrated", "macro", "f1")),
           "map": ("mAP", ("average_precision", "map"))}


@dataclasses.dataclass
class Ensemble:
  inference_model: keras.Model    # {"probabilities", "decisions"}: the members' mean, calibrated
                                  # thresholds inside
  report: dict                    # training's report of it; "ensemble": flip_average and each
                                  # member's figures
  config: ml_collections.ConfigDict  # the first member's, plus "ensemble": members and flip_average


def _lookup(tree, keys):
  for key in keys:
    tree = tree[key]
  return tree


def _field(cfg: ml_collections.ConfigDict, dotted: str):
  value = _lookup(cfg, dotted.split("."))
  return value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value


def read_configs(workdirs: list[str],
                 flip_average: bool = False) -> list[ml_collections.ConfigDict]:
  """Reads each member's config.json (``factory.load_run_config``), checked to describe the same
  split (``SPLIT_FIELDS``).

  One workdir is enough with ``flip_average`` (test-time flip averaging of one run).
  """
  if len(workdirs) < (1 if flip_average else 2):
    raise ValueError("an ensemble needs at least 2 member workdirs (1 with flip_average), got "
                     f"{len(workdirs)}")
  configs = []
  for workdir in workdirs:
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path} not found: each member must be a finished mlc-train workdir")
    configs.append(factory.load_run_config(path))
  for workdir, cfg in zip(workdirs[1:], configs[1:]):
    for field in SPLIT_FIELDS:
      if _field(cfg, field) != _field(configs[0], field):
        raise ValueError(f"member {workdir} has {field}={_field(cfg, field)!r}, member "
                         f"{workdirs[0]} {_field(configs[0], field)!r}: ensemble members must be "
                         "trained on the same split, at the same image size, with the same label "
                         "rules and calibration policy")
  return configs


def _member_report(workdir: str) -> dict:
  """The report.json the member's training run wrote: its own figures."""
  path = os.path.join(workdir, "report.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: each member must be a finished mlc-train workdir")
  with open(path) as f:
    return json.load(f)


def _member_figures(workdir: str, report: dict, split: str) -> dict:
  """The member's own figures (``FIGURES``) from its ``report``, which must score ``split``."""
  if report.get("split") != split:
    raise ValueError(f"{os.path.join(workdir, 'report.json')} scores the {report.get('split')} "
                     f"split, the ensemble the {split} split")
  return {"workdir": workdir, **{key: _lookup(report, path) for key, (_, path) in FIGURES.items()}}


def build(workdirs: list[str], data_dir: str | None, workdir: str, flip_average: bool = False,
          export_name: str | None = None) -> Ensemble:
  """Builds the ensemble of the runs in ``workdirs``, thresholded and scored on their split.

  Args:
    workdirs: training runs on the same split, answering the same labels
      under the same label rules (the first member's).
    data_dir: the corpus the members trained on (a directory or a source
      spec; ``None`` reads their ``data.source``).
    workdir: where the ensemble's workdir is saved, as a training run's.
    flip_average: each member also averaged over the mirror image.
    export_name: the config's export.name, which mlc-export uses; default:
      the first member's name + ``_ensemble``.

  Returns:
    The inference model, its report (with each member's own figures) and its config.

  Raises:
    FileNotFoundError: a member is not a finished mlc-train workdir.
    ValueError: fewer than two members (one with ``flip_average``), or members that split, label or
      rule differently, or whose report scores another split.
  """
  configs = read_configs(workdirs, flip_average)
  # what scoring.wrap_and_score will score
  split = "test" if configs[0].data.test_fraction else "validation"
  # Checked before minutes of predicting: every member's own report scores that split.
  members = [_member_figures(member, _member_report(member), split) for member in workdirs]
  models = [inference.load(member) for member in workdirs]
  names = list(inference.decision_layer(models[0]).label_names)
  rules = inference.implications(models[0])
  for member, model in zip(workdirs[1:], models[1:]):
    if list(inference.decision_layer(model).label_names) != names:
      raise ValueError(f"member {member} answers labels "
                       f"{list(inference.decision_layer(model).label_names)}, member {workdirs[0]} "
                       f"{names}: ensemble members must answer the same labels in one order")
    if inference.implications(model) != rules:
      raise ValueError(f"member {member} applies the label rules {inference.implications(model)}, "
                       f"member {workdirs[0]} {rules}: ensemble members must apply the same rules")
  cfg = configs[0]
  cfg.data.labels = names  # the models' label columns, in their order
  data = split_corpus.load_and_split(data_dir, cfg)
  network = inference.ensemble([inference.network(model) for model in models], flip_average)
  scored = scoring.wrap_and_score(network, data, cfg, rules)
  report = {**scored.report, "ensemble": {"flip_average": flip_average, "members": members}}
  cfg.ensemble = ml_collections.ConfigDict({"members": list(workdirs),
                                            "flip_average": flip_average})
  cfg.export.name = export_name or f"{cfg.export.name}_ensemble"
  training.save(workdir, scored.inference_model, report, cfg)
  return Ensemble(scored.inference_model, report, cfg)


def format_comparison(report: dict) -> str:
  """Formats, as markdown, each member's own figures (its report.json) and the ensemble's, on the
  same split."""
  record = report["ensemble"]
  rows = [[f"member {k}: {member['workdir']}", *(_number(member[key]) for key in FIGURES)]
          for k, member in enumerate(record["members"], start=1)]
  count = len(record["members"])
  title = (f"ensemble of {count}" + (", each flip-averaged" if record["flip_average"] else "")
           if count > 1
           else "flip-averaged (test-time augmentation)")
  rows.append([f"**{title}**", *(f"**{_number(_lookup(report, path))}**" for _,
                                 path in FIGURES.values())])
  return "\n".join([f"{report['split']} split, {report['num_images']} images", "",
                    *markdown.table(["model", *(title for title, _ in FIGURES.values())], rows)])


def _number(value: float | None) -> str:
  return "–" if value is None else f"{value:.3f}"
