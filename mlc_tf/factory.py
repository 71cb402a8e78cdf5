"""Choosing a model, loss and optimizer by name for a config, and reading a run's saved config.

Model Garden's ``factory.py``: ``mlc_tf.registry`` holds the builders and
knows no builder module; this module imports them all (``mlc_tf.models``,
``mlc_tf.train.losses``, ``mlc_tf.train.optimizers``), so every choice is
registered before it resolves one. Recipes, entry points and experiments
import it; the builder modules never do.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import ml_collections
from absl import logging

import mlc_tf.models  # noqa: F401  (registers the models)
import mlc_tf.train.losses  # noqa: F401  (registers the losses)
import mlc_tf.train.optimizers  # noqa: F401  (registers the optimizers)
from mlc_tf import config as config_lib
from mlc_tf import registry


def check_choices(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming the knobs of a choice where config.model/loss/optimizer sets
  another."""
  for kind in registry.KINDS:
    registry.knob_values(kind, config[kind])


def parse_choices(arg: str | None) -> dict[str, str]:
  """Parses a recipe's config argument (``--config=<recipe>.py:model=resnet,loss=focal``) into a
  dict."""
  choices = {}
  for item in filter(None, (arg or "").split(",")):
    kind, equals, name = item.partition("=")
    if not equals or kind not in registry.KINDS:
      raise ValueError(f"config argument {item!r}: expected "
                       f"{', '.join(f'{k}=<name>' for k in registry.KINDS)}, comma-separated")
    choices[kind] = name
  return choices


def choose(config: ml_collections.ConfigDict, kind: str, name: str,
           choices: Mapping[str, str] | None = None, **values: Any) -> None:
  """Sets ``config.<kind>.name`` (``choices[kind]`` if given, else ``name``) and declares its knobs.

  Each knob gets its value from ``values``, else its default, so each can be
  overridden on the command line. ``values`` are the recipe's for ``name``,
  checked against its knobs; when ``choices`` (the config argument) picked
  another, only those the other takes carry over.

  Args:
    config: the config to set, in place.
    kind: the choice's kind (``registry.KINDS``): "model", "loss" or "optimizer".
    name: the recipe's choice of ``kind``.
    choices: the config argument's choices (``parse_choices``); ``choices[kind]`` wins.
    **values: the recipe's knob values for ``name``.
  """
  chosen = (choices or {}).get(kind, name)
  knobs = registry.knobs(kind, chosen)
  if chosen == name:
    registry.checked_knobs(kind, name, values, knobs)
  group = config[kind]
  group.name = chosen
  for knob, default in knobs.items():
    group[knob] = values.get(knob, default)


def load_run_config(path: str) -> ml_collections.ConfigDict:
  """Loads the ``config.json`` a training run wrote into its workdir, over today's defaults.

  Lets a later command (evaluation, cross-validation) rebuild exactly the
  run's split and preprocessing without the original config file. Older runs
  saved every knob of every model, loss and optimizer; those the run's choice
  does not take are dropped, with a log line.
  """
  with open(path) as f:
    return run_config(json.load(f), path)


def run_config(saved: dict, source: str) -> ml_collections.ConfigDict:
  """Does ``load_run_config`` on a config already read; ``source`` says where from, for the log."""
  config = config_lib.base_config()
  for kind in registry.KINDS:
    group = saved.get(kind, {})
    name = group.get("name", config[kind].name)
    for field in sorted(set(group) - set(config[kind]) - set(registry.knobs(kind, name))):
      logging.info("%s: dropping %s.%s=%r, which %s %r does not take", source, kind, field,
                   group.pop(field), kind, name)
  config.update(saved)
  return config
