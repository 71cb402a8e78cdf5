"""Weight averaging (config.optimizer.ema_momentum): the averaged weights are the ones calibrated
and saved."""

import keras
import numpy as np
from helpers import fast_config, make_tiny_corpus

from mlc_tf import models
from mlc_tf.train import training


def _trainable(model):
  return [np.asarray(w) for w in model.trainable_weights]


def test_the_saved_model_holds_the_averaged_weights(tmp_path):
  """With a momentum of almost 1 the average stays where Keras starts it (the weights after the
  first step, at most one Adam step of ``learning_rate`` from the initial ones), whatever training
  does
  next."""
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=32)
  cfg = fast_config(epochs=2)
  cfg.augment.flip = ""
  cfg.optimizer.learning_rate = 0.05  # big steps: the raw weights move far from their start
  cfg_ema = cfg.copy_and_resolve_references()
  cfg_ema.optimizer.ema_momentum = 1.0 - 1e-9
  averaged = training.train(cfg_ema, root, str(tmp_path / "averaged"))
  plain = training.train(cfg, root, str(tmp_path / "plain"))
  keras.utils.set_random_seed(cfg.seed)
  initial = _trainable(models.build(cfg.model, len(plain.label_names), cfg.data.image_size))
  moved = max(float(np.abs(a - b).max()) for a, b in zip(_trainable(plain.model), initial))
  averaged_moved = max(float(np.abs(a - b).max())
                       for a, b in zip(_trainable(averaged.model), initial))
  assert (moved > 2 * cfg.optimizer.learning_rate
          and averaged_moved <= 1.01 * cfg.optimizer.learning_rate)
  reloaded = keras.saving.load_model(str(tmp_path / "averaged" / "model.keras"), safe_mode=True)
  np.testing.assert_allclose(reloaded.get_layer("probabilities").get_weights()[0],
                             averaged.model.get_layer("probabilities").get_weights()[0])
