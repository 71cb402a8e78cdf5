"""mlc_tf: multi-label image classification with TensorFlow/Keras, from photo folders to TF Serving.

"The Flickr study", where the code names it, is the earlier multi-label
tagging study of 20,000 Flickr photos this package started from: its corpus
layout (``images/`` + ``annotations/<label>.txt``), its 14 labels (the
flickr14 corpus), its models (the minimal and seed CNNs, two networks,
progressive growing) and its recipes (``configs/seed_*.py``).
"""

__version__ = "0.1.0"
