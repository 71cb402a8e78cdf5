"""The recipes' package: the recipes in the source tree's ``configs/``, and what they share.

``configs/`` stays at the top of the tree, where ``--config=configs/<name>.py`` names it, and is on
this package's path: a recipe built on another imports it as any module (``from mlc_tf.configs
import best`` is ``configs/best.py``); what the recipes share is
``import mlc_tf.configs.common as mcc``.
"""

import os

# configs/ beside the mlc_tf/ imported (a checkout or an editable install: where configs/ exists).
_SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
__path__.append(os.path.join(_SOURCE_TREE, "configs"))
