"""Pieces the recipes in configs/ share: flickr14's label names and rules.

A recipe chooses its model, loss and optimizer with ``mlc_tf.config.choose``,
which declares every knob of each choice with the builder's default, so each
can be overridden on the command line (``--config.model.width=64``) and a knob
of another choice is an error, never silently ignored. Another choice than
the recipe's is a config argument; it keeps the recipe's values for the knobs
the other choice also takes:

  mlc-train --config=configs/best.py:model=resnet,optimizer=adam --config.model.blocks=4
"""

# The 14 labels of the Flickr photo corpus this project started from (../shared/datasets/flickr14).
FLICKR14_LABELS = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                   "portrait", "river", "sea", "tree")
# Only humans are labelled male/female, and a baby is a person: targets that break this are labelling errors.
FLICKR14_RULES = ("baby=>people", "female=>people", "male=>people")

