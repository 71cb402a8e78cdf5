"""Pieces the recipes in configs/ share: flickr14's label names and rules, a recipe's base.

A recipe chooses its model, loss and optimizer with ``mlc_tf.config.choose``,
which declares every knob of each choice with the builder's default, so each
can be overridden on the command line (``--config.model.width=64``) and a knob
of another choice is an error, never silently ignored. Another choice than
the recipe's is a config argument; it keeps the recipe's values for the knobs
the other choice also takes:

  mlc-train --config=configs/best.py:model=resnet,optimizer=adam --config.model.blocks=4
"""

from __future__ import annotations

import importlib.util
import os
import types

from mlc_tf.data.flickr14 import FLICKR14_LABELS, FLICKR14_RULES  # noqa: F401  (for the recipes)


def recipe(config_file: str, name: str) -> types.ModuleType:
  """The recipe ``<name>.py`` beside ``config_file``: for a recipe built on another.

  Recipes are files that ``--config=configs/<name>.py`` loads by path, not a
  package, so one imports another by path too.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"mlc_tf_recipe_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
