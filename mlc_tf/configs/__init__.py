"""What the recipes in configs/ share, importable (``import mlc_tf.configs.common as mcc``); not recipes."""
