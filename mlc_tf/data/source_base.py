"""``Source``: what every data source gives, split and read the same way (``sources`` opens one).

The file sources (folder:, csv:) are this class itself; ``tfds/source.py``
subclasses it. Both import it from here, and ``sources.open_source``, which
dispatches on the spec, imports them: so the dispatch never sits in a module
an implementation imports, and no import runs in a circle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from mlc_tf.data import corpus as corpus_lib
from mlc_tf.data import stratification


class Source:
  """A corpus from files: label frame with a ``path`` column, split by iterative stratification."""

  def __init__(self, spec: str, frame: pd.DataFrame, audit: corpus_lib.CorpusAudit):
    self.spec = spec
    self.frame = frame
    self.audit = audit

  @property
  def label_names(self) -> list[str]:
    return corpus_lib.label_columns(self.frame)

  def split(self, val_fraction: float, test_fraction: float,
            seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns the row positions of the train, validation and test parts of ``self.frame``."""
    targets = self.frame[self.label_names].to_numpy()
    return stratification.train_val_test_split(targets, val_fraction, test_fraction, seed)

  def images(self, frame: pd.DataFrame) -> np.ndarray | tf.data.Dataset:
    """Returns the images of ``frame`` (rows of ``self.frame``), in its order.

    They are in the form ``make_dataset`` takes.
    """
    return frame[corpus_lib.PATH_COLUMN].to_numpy()
