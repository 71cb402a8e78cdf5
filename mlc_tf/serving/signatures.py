"""The serving contract's names.

What an exported model's signatures are called, and what they take and give.

``mlc_tf.serving.export`` builds the signatures under these names, ``client`` speaks
them, and docs/serving.md documents them; nothing here imports TensorFlow.
"""

SERVING = "serving_default"  # image_bytes string [B] -> probabilities, decisions, labels, valid
PIXELS = "predict_pixels"     # pixels float32 [B, H, W, 3] -> probabilities, decisions, labels
METADATA = "metadata"         # () -> label_names, thresholds, image_size, max_image_pixels, config

IMAGE_BYTES = "image_bytes"
PIXEL_INPUT = "pixels"
OUTPUTS = ("probabilities", "decisions", "labels", "valid")
