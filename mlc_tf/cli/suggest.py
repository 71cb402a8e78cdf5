"""mlc-suggest: which untagged photos to tag next; writes a ranked CSV.

  mlc-suggest --model=workdirs/demo --images=photos/untagged --count=50 --output=suggestions.csv

Ranks the photos of --images (folders and/or globs, as mlc-predict) by how much
tagging them would teach the model of --model (model.keras or its training
workdir): unsure near each label's threshold, weighted toward rare labels, and
diverse rather than near-duplicates (mlc_tf/evaluate/suggestions.py). The CSV
has file (its absolute path), rank, score, unsure_labels (the labels the model is unsure of, most
teaching first) and model_labels (what it decides now). Tag them in
mlc-review --suggestions=<csv>; the tags go to an additions file that training
reads (--config.data.additions). Unreadable files are skipped, counted and
named; no readable image at all is an error, and so is --count below 1.
"""

from __future__ import annotations

from mlc_tf import cli

cli.start()  # first: TensorFlow, which the imports below load, reads its environment then

import os

from absl import flags, logging

from mlc_tf.cli import common
from mlc_tf.evaluate import suggestions
from mlc_tf.models import inference
from mlc_tf.serving import prediction

_MODEL = flags.DEFINE_string("model", None, "model.keras, or the training workdir holding it.",
                             required=True)
_IMAGES = flags.DEFINE_list("images", None, "Folders and/or glob patterns of untagged photos.",
                            required=True)
_COUNT = flags.DEFINE_integer("count", 50, "How many photos to suggest.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("output", "suggestions.csv", "The CSV to write.")
_DIVERSITY = flags.DEFINE_float(
    "diversity", 1.0, "How strongly a photo like one already suggested is held back (0: rank by "
    "score alone).", lower_bound=0.0, upper_bound=1.0)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch (bounds memory).",
                                   lower_bound=1)


def main(argv):
  del argv
  with common.exit_on_error("mlc-suggest", OSError, ValueError):
    paths = [os.path.abspath(path) for path in prediction.list_images(_IMAGES.value)]
    model = inference.load(_MODEL.value)
    label_names = list(inference.decision_layer(model).label_names)
    kept, probabilities, features = prediction.probabilities_and_features(
        model, paths, _BATCH_SIZE.value)
    if not kept:
      raise ValueError(f"none of the {len(paths)} file(s) of {', '.join(_IMAGES.value)} is an "
                       "image the model can read")
    prior = suggestions.train_prior(_MODEL.value, label_names)
    if prior is None:
      logging.warning("no report.json with per-label counts beside %s: every label weighs the "
                      "same", _MODEL.value)
    picks = suggestions.suggest(kept, probabilities, features,
                                inference.decision_layer(model).thresholds.numpy(), prior,
                                label_names, _COUNT.value, _DIVERSITY.value)
    suggestions.write_csv(_OUTPUT.value, picks)
  print(f"wrote {_OUTPUT.value}: {len(picks)} of {len(kept)} photo(s) to tag next")
  common.print_skipped_images(sorted(set(paths) - set(kept)))


def run():
  common.run(main, logging.INFO)


if __name__ == "__main__":
  run()
