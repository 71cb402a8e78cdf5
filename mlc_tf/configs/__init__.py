"""What the recipes in configs/ share (``import mlc_tf.configs.common as mcc``)."""
