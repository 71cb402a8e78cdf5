"""TFDS builders for mlc_tf's corpora; importing this package registers them with TFDS.

  mlc_corpus   a corpus in the study's layout (manual_dir = the corpus folder)
  mlc_digits   the built-in demo corpus, generated offline
"""

from mlc_tf.data.tfds.builders import (FLICKR14_LABELS, CorpusConfig, DigitsConfig, MlcCorpus, MlcDigits,
                                       corpus_config, digits_config, rgb_jpeg)
from mlc_tf.data.tfds.features import MultiHotLabels
