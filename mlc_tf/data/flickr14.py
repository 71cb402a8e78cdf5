"""The Flickr photo corpus this project started from: its labels and rules.

The corpus is ../shared/datasets/flickr14.

Data, not a recipe: the ``mlc_corpus`` TFDS builder names its labels, and the
recipes (through ``mlc_tf.configs.common``) train on them.
"""

FLICKR14_LABELS = ("baby", "bird", "car", "clouds", "dog", "female", "flower", "male", "night",
                   "people", "portrait", "river", "sea", "tree")
# Only humans are labelled male/female, and a baby is a person: targets that break this are
# labelling errors.
FLICKR14_RULES = ("baby=>people", "female=>people", "male=>people")
