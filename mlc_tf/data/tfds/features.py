"""A TFDS feature for multi-label targets: a 0/1 vector whose columns carry names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import tensorflow_datasets as tfds


class MultiHotLabels(tfds.features.Tensor):
  """uint8 [num_labels] multi-hot vector; the label names live in the feature info.

  TFDS' ``ClassLabel`` names one class per example; a multi-label corpus needs
  names for the columns of a vector. Encodes either an iterable of label names
  or a 0/1 vector; decodes to ``uint8 [num_labels]``.
  """

  def __init__(self, names: Sequence[str], *, doc=None):
    names = list(names)
    if len(set(names)) != len(names) or not names:
      raise ValueError(f"label names must be distinct and non-empty, got {names}")
    super().__init__(shape=(len(names),), dtype=np.uint8, doc=doc)
    self._names = names
    self._index = {name: i for i, name in enumerate(names)}

  @property
  def names(self) -> list[str]:
    return list(self._names)

  @property
  def num_classes(self) -> int:
    return len(self._names)

  def encode_example(self, example_data: Iterable[str] | np.ndarray):
    if isinstance(example_data, np.ndarray):
      vector = example_data
    else:
      items = list(example_data)
      if all(isinstance(item, str) for item in items):
        unknown = sorted(set(items) - self._index.keys())
        if unknown:
          raise ValueError(f"unknown label(s) {unknown}; known: {self._names}")
        vector = np.zeros(len(self._names), np.uint8)
        vector[[self._index[item] for item in items]] = 1
      else:
        vector = np.asarray(items)
    if vector.shape != (len(self._names),) or not np.isin(vector, (0, 1)).all():
      raise ValueError(f"expected a 0/1 vector of {len(self._names)} labels, got {vector!r}")
    return super().encode_example(vector.astype(np.uint8))

  def _additional_repr_info(self):
    return {"names": self._names}

  @classmethod
  def from_json_content(cls, value) -> MultiHotLabels:
    return cls(value["names"])

  def to_json_content(self) -> dict:
    return {"names": self._names}
