import logging

import keras
import numpy as np
import pandas as pd
import pytest

from mlc_tf.data import label_rules
from mlc_tf.models import layers

LABELS = ["baby", "female", "male", "people", "sea"]


def test_parse_implications():
  assert label_rules.parse_implications([" baby => people", "male=>people"]) == [("baby", "people"),
                                                                                 ("male", "people")]
  for bad in ("baby", "baby=>", "=>people", "a=>b=>c", "people=>people"):
    with pytest.raises(ValueError, match="label rule"):
      label_rules.parse_implications([bad])


def test_the_old_explore_syntax_still_parses_with_a_warning(caplog):
  with caplog.at_level(logging.WARNING):
    assert label_rules.parse_implications(["baby > people", "male=>people"]) == [("baby", "people"),
                                                                                ("male", "people")]
  assert [record.getMessage() for record in caplog.records] == [
      "label rule 'baby > people': the 'a>b' form is deprecated, write 'a=>b' as configs do"]


def test_implications_close_transitively_and_fix_targets():
  rules = [("baby", "female"), ("female", "people")]
  targets = np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 1], [0, 1, 0, 0, 0]], np.uint8)
  fixed = label_rules.apply_implications(targets, LABELS, rules)
  np.testing.assert_array_equal(fixed, [[1, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 1, 0, 1, 0]])
  assert fixed.dtype == np.uint8
  with pytest.raises(ValueError, match="unknown label"):
    label_rules.apply_implications(targets, LABELS, [("dog", "people")])


def test_layer_matches_numpy_and_survives_saving(tmp_path):
  rules = label_rules.parse_implications(["baby=>people", "male=>people", "female=>people"])
  inputs = keras.Input((len(LABELS),), dtype="int32")
  layer = layers.LabelImplications(LABELS, rules, name="label_rules")
  model = keras.Model(inputs, layer(inputs))
  decisions = np.random.default_rng(0).integers(0, 2, size=(64, len(LABELS))).astype(np.int32)
  expected = label_rules.apply_implications(decisions, LABELS, rules)
  np.testing.assert_array_equal(model.predict(decisions, verbose=0), expected)
  path = str(tmp_path / "rules.keras")
  model.save(path)
  restored = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_array_equal(restored.predict(decisions, verbose=0), expected)
  assert restored.get_layer("label_rules").implications == rules


def test_merge_labels_ors_the_sources():
  frame = pd.DataFrame(
      {"female": [1, 0, 0], "male": [0, 1, 0], "people": [0, 0, 0], "sea": [0, 0, 1]},
      dtype="uint8").assign(path=["a", "b", "c"])
  merged = label_rules.merge_labels(frame, {"people": ["female", "male", "people"]})
  assert list(merged.columns) == ["people", "sea", "path"]
  np.testing.assert_array_equal(merged["people"], [1, 1, 0])
  with pytest.raises(ValueError, match="unknown"):
    label_rules.merge_labels(frame, {"person": ["man"]})
  with pytest.raises(ValueError, match="overwrite"):
    label_rules.merge_labels(frame, {"sea": ["female"]})
