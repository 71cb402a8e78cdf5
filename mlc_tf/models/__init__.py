"""Model builders, chosen by name in the config (``config.model.name``), and the served model around
them.

``registry`` holds the builders (``build``, ``register``); importing
this package imports every builder module, which registers itself; ``layers``
holds every custom Keras layer a saved model may contain; ``inference`` builds,
loads and introspects the inference model that training saves and export serves;
``heatmaps`` shows where in a photo a trained network finds a label (Grad-CAM).
"""

# Each registers its builder.
from mlc_tf.models import applications, cnn, resnet, two_network  # noqa: F401
from mlc_tf.models.registry import build, register

__all__ = ["build", "register"]
