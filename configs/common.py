"""What the recipes share: the flickr14 label names, and how a recipe chooses its model, loss and optimizer.

Not a recipe. A choice is a name and its knobs, whose defaults are the
builder's (mlc_tf/models/registry.py ``knobs``; ``KNOBS`` in
mlc_tf/train/losses.py and optimizers.py). A recipe declares every knob of its
choices, so each can be overridden on the command line
(``--config.model.width=64``), and a knob of another choice is an error, never
silently ignored. Another choice than the recipe's is a config argument:

  mlc-train --config=configs/best.py:model=resnet,optimizer=adam --config.model.blocks=4

declares that choice's knobs, keeping the recipe's values for the knobs it also takes.
"""

from __future__ import annotations

import ml_collections

from mlc_tf import config as config_lib

# The study's corpus, configs/flickr14.py and the recipes derived from it.
FLICKR14_LABELS = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                   "portrait", "river", "sea", "tree")
KNOBS = config_lib.knob_lookups()


def parse_arg(arg: str | None) -> dict[str, str]:
  """The config argument (after ``:`` in ``--config=<recipe>.py:...``), ``model=resnet,loss=focal``, as a dict."""
  choices = {}
  for item in filter(None, (arg or "").split(",")):
    kind, equals, name = item.partition("=")
    if not equals or kind not in KNOBS:
      raise ValueError(f"config argument {item!r}: expected {', '.join(f'{k}=<name>' for k in KNOBS)}, "
                       "comma-separated")
    choices[kind] = name
  return choices


def choose(config: ml_collections.ConfigDict, kind: str, name: str, choices: dict[str, str], **values) -> None:
  """Sets ``config.<kind>.name`` (``choices[kind]`` if given, else ``name``) and declares every knob of it.

  Each knob gets its value from ``values``, else its default. ``values`` are
  the recipe's for ``name``, checked against its knobs; when the config
  argument chose another, only those the other takes carry over.
  """
  chosen = choices.get(kind, name)
  knobs = KNOBS[kind](chosen)
  if chosen == name:
    config_lib.checked_knobs(kind, name, values, knobs)
  group = config[kind]
  group.name = chosen
  for knob, default in knobs.items():
    group[knob] = values.get(knob, default)

