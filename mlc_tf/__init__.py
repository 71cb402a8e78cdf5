"""mlc_tf: multi-label image classification with TensorFlow/Keras, from photo folders to TF Serving."""

__version__ = "0.1.0"
