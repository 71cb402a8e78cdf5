"""Each loss against a value computed by hand from its formula."""

import math

import keras
import ml_collections
import numpy as np
import pytest

from mlc_tf import registry
from mlc_tf.train import losses

Y_TRUE = np.array([[1.0, 0.0]], np.float32)
Y_PRED = np.array([[0.8, 0.3]], np.float32)
LABELS = ["people", "sea"]


def _loss_cfg(name, **fields):
  return ml_collections.ConfigDict(dict(name=name, **fields))


def _value(loss, y_true=Y_TRUE, y_pred=Y_PRED):
  return float(loss(y_true, y_pred))


@pytest.mark.parametrize("name,expected", [
    ("bce", -(math.log(0.8) + math.log(0.7)) / 2),
    ("mse", (0.2**2 + 0.3**2) / 2),
    # focal, gamma 2, no class balancing: -(1 - p_t)^2 log p_t, p_t = 0.8 and 0.7.
    ("focal", -(0.2**2 * math.log(0.8) + 0.3**2 * math.log(0.7)) / 2),
    # asymmetric, gamma_pos 0, gamma_neg 4, margin 0.05: the negative's p shifts to 0.25.
    ("asymmetric", -(math.log(0.8) + 0.25**4 * math.log(0.75)) / 2),
    ("weighted_bce", -(math.log(0.8) + math.log(0.7)) / 2),  # all weights 1: plain BCE
    # 2 % of a batch's 2 entries sets none aside: plain BCE.
    ("large_loss", -(math.log(0.8) + math.log(0.7)) / 2),
])
def test_loss_matches_hand_computed_value(name, expected):
  defaults = registry.knobs("loss", name)
  loss = losses.make_loss(_loss_cfg(name, **defaults), LABELS)  # every knob at its default
  assert _value(loss) == pytest.approx(expected, rel=1e-5)


def test_weighted_bce_weights_false_negatives_and_false_positives_per_label():
  loss = losses.make_loss(
      _loss_cfg("weighted_bce", fn_weights={"people": 2.0}, fp_weights={"sea": 3.0}), LABELS)
  assert _value(loss) == pytest.approx(-(2 * math.log(0.8) + 3 * math.log(0.7)) / 2, rel=1e-5)
  # A false-positive weight on "people" does not touch its positive term.
  people_fp = losses.make_loss(_loss_cfg("weighted_bce", fp_weights={"people": 5.0}), LABELS)
  assert _value(people_fp) == pytest.approx(-(math.log(0.8) + math.log(0.7)) / 2, rel=1e-5)


def test_asymmetric_focuses_positives_and_discards_easy_negatives():
  loss = losses.AsymmetricLoss(gamma_pos=1.0, gamma_neg=4.0, margin=0.05)
  assert _value(loss) == pytest.approx(-(0.2 * math.log(0.8) + 0.25**4 * math.log(0.75)) / 2,
                                       rel=1e-5)
  easy_negative = np.array([[0.0, 0.0]], np.float32), np.array([[0.03, 0.04]], np.float32)
  assert _value(loss, *easy_negative) == pytest.approx(0.0, abs=1e-7)


def test_large_loss_sets_aside_only_the_largest_negatives():
  y_true = np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], np.float32)
  # Largest losses: the positive at 0.05, then the negatives at 0.9 and 0.8 (the untagged ones).
  y_pred = np.array([[0.05, 0.9, 0.2, 0.1, 0.3], [0.8, 0.1, 0.6, 0.2, 0.1]], np.float32)
  bce = -(y_true * np.log(y_pred) + (1 - y_true) * np.log(1 - y_pred))
  kept = np.ones_like(bce)
  kept[0, 1] = kept[1, 0] = 0.0  # 20 % of 10 entries: the two largest negatives
  rejection = losses.LargeLossRejection(reject_fraction=0.2, correct=False)
  assert _value(rejection, y_true, y_pred) == pytest.approx((bce * kept).mean(), rel=1e-5)
  corrected = bce * kept
  corrected[0, 1], corrected[1, 0] = -math.log(0.9), -math.log(0.8)  # counted as positives
  correction = losses.LargeLossRejection(reject_fraction=0.2, correct=True)
  assert _value(correction, y_true, y_pred) == pytest.approx(corrected.mean(), rel=1e-5)
  # More to set aside than negatives: every negative goes, the positives stay.
  everything = losses.LargeLossRejection(reject_fraction=0.9, correct=False)
  assert _value(everything, y_true, y_pred) == pytest.approx((bce * y_true).mean(), rel=1e-5)
  with pytest.raises(ValueError, match=r"reject_fraction must be in \[0, 1\)"):
    losses.LargeLossRejection(reject_fraction=1.0, correct=False)


def test_large_loss_trains_in_a_compiled_step():
  """The count of entries set aside follows the batch's size inside the traced train step."""
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(10, 3)).astype(np.float32), (rng.random((10, 4)) < 0.3).astype(np.float32)
  inputs = keras.Input((3,))
  model = keras.Model(inputs, keras.layers.Dense(4, activation="sigmoid")(inputs))
  model.compile(optimizer="sgd", loss=losses.LargeLossRejection(0.1, False))
  before = model.get_weights()[0].copy()
  history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # batches of 4, 4 and 2
  assert np.isfinite(history.history["loss"][0])
  assert not np.allclose(model.get_weights()[0], before)


def test_class_weight_power_weights_positives_by_label_rarity():
  targets = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])  # positives 2 and 1, negatives 2 and 3
  np.testing.assert_allclose(losses.positive_weights(targets, 1.0), [1.0, 3.0])
  np.testing.assert_allclose(losses.positive_weights(targets, 0.5), [1.0, math.sqrt(3)], rtol=1e-6)
  np.testing.assert_allclose(losses.positive_weights(targets, 1.0, max_weight=2.0), [1.0, 2.0])
  loss = losses.make_loss(_loss_cfg("weighted_bce", class_weight_power=1.0), LABELS, targets)
  assert loss.fn_weights == [1.0, 3.0] and loss.fp_weights == [1.0, 1.0]


def test_bad_loss_settings_are_clear_errors():
  with pytest.raises(ValueError, match="unknown loss"):
    losses.make_loss(_loss_cfg("hinge"), LABELS)
  with pytest.raises(ValueError, match="unknown label"):
    losses.make_loss(_loss_cfg("weighted_bce", fp_weights={"persons": 2.0}), LABELS)
  with pytest.raises(
      ValueError, match="loss 'bce' takes no class_weight_power; its knobs: label_smoothing=0.0"):
    losses.make_loss(_loss_cfg("bce", class_weight_power=0.5), LABELS, np.ones((2, 2)))
  with pytest.raises(
      ValueError,
      match=r"loss 'focal' takes no margin; its knobs: gamma=2.0, alpha=0.25, .*:loss="):
    losses.make_loss(_loss_cfg("focal", margin=0.1), LABELS)


def test_label_smoothing_pulls_bce_targets_towards_one_half():
  loss = losses.make_loss(_loss_cfg("bce", label_smoothing=0.2), LABELS)
  # targets 1 -> 0.9 and 0 -> 0.1
  expected = -(0.9 * math.log(0.8) + 0.1 * math.log(0.2) + 0.1 * math.log(0.3) +
               0.9 * math.log(0.7)) / 2
  assert _value(loss) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match="takes no label_smoothing"):
    losses.make_loss(_loss_cfg("mse", label_smoothing=0.1), LABELS)


@pytest.mark.parametrize("loss", [losses.WeightedBinaryCrossentropy([2.0, 1.0], [1.0, 3.0]),
                                  losses.AsymmetricLoss(1.0, 3.0, 0.1),
                                  losses.LargeLossRejection(0.1, True)])
def test_custom_losses_survive_saving_with_safe_mode(loss, tmp_path):
  inputs = keras.Input((3,))
  model = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(inputs))
  model.compile(optimizer="adam", loss=loss)
  path = str(tmp_path / "model.keras")
  model.save(path)
  restored = keras.saving.load_model(path, safe_mode=True).loss
  assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
  assert _value(restored) == pytest.approx(_value(loss), rel=1e-6)
