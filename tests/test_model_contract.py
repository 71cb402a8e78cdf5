"""What every registered model keeps, checked once per model (keras-hub's
``run_vision_backbone_test``).

Built small, each answers one probability per label, saves and loads with
``safe_mode=True`` to the same answers, and refuses a knob it does not take.
"""

import keras
import numpy as np
import pytest

from mlc_tf import config as config_lib
from mlc_tf import models, registry

IMAGE_SIZE = 32  # keras.applications take no less
NUM_LABELS = 3
SMALL = {"width": 4, "depth": 2, "blocks": 2, "stages": 2}  # for the models that take these knobs


def _small(name):
  cfg = config_lib.base_config().model
  cfg.name = name
  cfg.update({knob: value for knob, value in SMALL.items()
              if knob in registry.knobs("model", name)})
  return cfg


@pytest.mark.parametrize("name", registry.names("model"))
def test_model_answers_one_probability_per_label_and_loads_in_safe_mode(name, tmp_path):
  model = models.build(_small(name), NUM_LABELS, IMAGE_SIZE)
  images = np.random.default_rng(0).uniform(0, 255,
                                            (2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
  probs = model.predict(images, verbose=0)
  assert probs.shape == (2, NUM_LABELS) and probs.dtype == np.float32
  assert (((probs >= 0) & (probs <= 1)).all()
          and model.layers[-1].activation is keras.activations.sigmoid)
  path = str(tmp_path / "model.keras")
  model.save(path)
  reloaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_allclose(reloaded.predict(images, verbose=0), probs, atol=1e-6)


@pytest.mark.parametrize("name", registry.names("model"))
def test_model_refuses_a_knob_it_does_not_take_naming_those_it_does(name):
  cfg = _small(name)
  cfg.colour = "blue"
  with pytest.raises(ValueError, match=f"model '{name}' takes no colour; its knobs: ") as error:
    models.build(cfg, NUM_LABELS, IMAGE_SIZE)
  assert all(f"{knob}=" in str(error.value) for knob in registry.knobs("model", name))
