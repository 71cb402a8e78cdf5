"""TFDS builders for mlc_tf's corpora; importing this package registers them with TFDS.

  mlc_corpus   a corpus in the layout of README's "Your own corpus" (manual_dir = the corpus folder)
  mlc_digits   the built-in demo corpus, generated offline
"""

from mlc_tf.data.tfds.builders import MlcCorpus, MlcDigits, corpus_config, digits_config, rgb_jpeg
from mlc_tf.data.tfds.features import MultiHotLabels

__all__ = ["MlcCorpus", "MlcDigits", "MultiHotLabels", "corpus_config", "digits_config", "rgb_jpeg"]
