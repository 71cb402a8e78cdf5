"""Pieces the recipes in configs/ share: flickr14's label names and rules.

A recipe chooses its model, loss and optimizer with ``mlc_tf.factory.choose``,
which declares every knob of each choice with the builder's default, so each
can be overridden on the command line (``--config.model.width=64``) and a knob
of another choice is an error, never silently ignored. Another choice than
the recipe's is a config argument; it keeps the recipe's values for the knobs
the other choice also takes:

  mlc-train --config=configs/best.py:model=resnet,optimizer=adam --config.model.blocks=4
"""

from mlc_tf.data.flickr14 import FLICKR14_LABELS, FLICKR14_RULES  # noqa: F401  (for the recipes)

