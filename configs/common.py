"""What the recipes share: the flickr14 label names. Not a recipe.

A recipe chooses its model, loss and optimizer with ``mlc_tf.config.choose``,
which declares every knob of each choice with the builder's default, so each
can be overridden on the command line (``--config.model.width=64``) and a knob
of another choice is an error, never silently ignored. Another choice than
the recipe's is a config argument; it keeps the recipe's values for the knobs
the other choice also takes:

  mlc-train --config=configs/best.py:model=resnet,optimizer=adam --config.model.blocks=4
"""

# The study's corpus, for configs/flickr14.py and the recipes derived from it.
FLICKR14_LABELS = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night", "people",
                   "portrait", "river", "sea", "tree")
