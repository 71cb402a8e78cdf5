"""Models under their knobs: each variant builds, answers per label and survives a safe-mode
save/load.

What every registered model keeps at its defaults is tests/test_model_contract.py's.
"""

import keras
import numpy as np
import pytest

from mlc_tf import config as config_lib
from mlc_tf import models, registry
from mlc_tf.models import inference


def _cfg(name, **fields):
  """config.model for ``name``; narrow (width 4) unless told otherwise, for the models that have a
  width."""
  cfg = config_lib.base_config().model
  cfg.update(dict(name=name, **({"width": 4} if name in ("minimal_cnn", "seed_cnn", "simple_cnn",
                                                         "resnet") else {}),
                  **fields))
  return cfg


@pytest.mark.parametrize("cfg,size", [
    (_cfg("minimal_cnn"), 16),
    (_cfg("seed_cnn", depth=4), 16),
    (_cfg("simple_cnn", depth=2), 16),
    (_cfg("simple_cnn", depth=2, stem_stride=2), 16),
    (_cfg("resnet", blocks=3, stages=2, se_ratio=2), 16),
    (_cfg("resnet", blocks=2, stages=2, stem_stride=4), 16),
])
def test_model_outputs_one_probability_per_label(cfg, size, tmp_path):
  model = models.build(cfg, 5, size)
  images = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
  probs = model.predict(images, verbose=0)
  assert probs.shape == (2, 5) and probs.dtype == np.float32 and ((probs >= 0) & (probs <= 1)).all()
  assert model.layers[-1].activation is keras.activations.sigmoid
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_allclose(loaded.predict(images, verbose=0), probs, atol=1e-6)


def test_simple_cnn_stem_stride_halves_the_first_feature_map():
  strided = models.build(_cfg("simple_cnn", depth=2, stem_stride=2), 5, 32)
  assert strided.get_layer("conv1").output.shape[1:3] == (16, 16)
  assert strided.count_params() == models.build(_cfg("simple_cnn", depth=2), 5, 32).count_params()
  with pytest.raises(ValueError, match="stem_stride"):
    models.build(_cfg("simple_cnn", stem_stride=4), 5, 32)


def _layers(model, cls):
  return [layer for layer in model.layers if isinstance(layer, cls)]


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_seed_cnn_depth_knob(depth):
  model = models.build(_cfg("seed_cnn", depth=depth), 3, 16)
  convs = _layers(model, keras.layers.Conv2D)
  assert len(convs) == depth
  assert [c.kernel_size for c in convs] == [(3, 3)] * (depth - 1) + [(1, 1)]
  assert len(_layers(model, keras.layers.MaxPooling2D)) == depth - depth // 2  # later convs only
  # full resolution until the later half
  assert model.get_layer(f"conv{depth // 2 + 1}").output.shape[1] == 16


def test_resnet_blocks_and_stages():
  model = models.build(_cfg("resnet", blocks=8, stages=4), 3, 32)
  assert len(_layers(model, keras.layers.Add)) == 8
  assert model.get_layer("stage4_block2_out").output.shape[1:] == (4, 4, 32)
  with pytest.raises(ValueError, match="stages"):
    models.build(_cfg("resnet", blocks=2, stages=3), 3, 32)


def test_unknown_model_and_backbone_are_errors():
  with pytest.raises(ValueError, match="unknown model"):
    models.build(_cfg("vgg"), 3, 16)
  with pytest.raises(ValueError, match="preprocesses"):
    models.build(_cfg("keras_app", backbone="ResNet50"), 3, 32)


def test_two_networks_give_one_output_in_label_order(tmp_path):
  labels = ["baby", "female", "male", "people", "sea"]
  cfg = _cfg("simple_cnn", depth=2, first_labels=("people", "female", "male"))
  model = models.build(cfg, len(labels), 16, labels)
  images = np.random.default_rng(1).uniform(0, 255, size=(3, 16, 16, 3)).astype(np.float32)
  probs = model.predict(images, verbose=0)
  first = model.get_layer("simple_cnn_first").predict(images, verbose=0)  # female, male, people
  rest = model.get_layer("simple_cnn_rest").predict(images, verbose=0)    # baby, sea
  np.testing.assert_allclose(probs, np.stack([rest[:, 0], first[:, 0], first[:, 1], first[:, 2],
                                              rest[:, 1]], 1),
                             atol=1e-6)
  path = str(tmp_path / "two.keras")
  model.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_allclose(loaded.predict(images, verbose=0), probs, atol=1e-6)
  for bad in (("person",), tuple(labels)):
    with pytest.raises(ValueError, match="first_labels"):
      models.build(_cfg("simple_cnn", depth=2, first_labels=bad), len(labels), 16, labels)


def test_flip_average_is_the_mean_over_the_mirror_image_and_reloads(tmp_path):
  model = models.build(_cfg("simple_cnn", depth=2), 3, 16)
  averaged = inference.with_flip_average(model)
  images = np.random.default_rng(2).uniform(0, 255, size=(4, 16, 16, 3)).astype(np.float32)
  expected = (model.predict(images, verbose=0) + model.predict(images[:, :, ::-1], verbose=0)) / 2
  probs = averaged.predict(images, verbose=0)
  np.testing.assert_allclose(probs, expected, atol=1e-6)
  # mirror-invariant
  np.testing.assert_allclose(averaged.predict(images[:, :, ::-1], verbose=0), probs, atol=1e-6)
  path = str(tmp_path / "flip.keras")
  averaged.save(path)
  loaded = keras.saving.load_model(path, safe_mode=True)
  np.testing.assert_allclose(loaded.predict(images, verbose=0), probs, atol=1e-6)


def test_builder_keyword_defaults_are_the_only_defaults():
  cfg = config_lib.base_config().model  # the name and what wraps any model; no knobs
  assert set(cfg) == {"name", "first_labels", "flip_average"}
  model = models.build(cfg, 3, 16)
  assert (model.get_layer("conv1").filters == 32
          and "head_dropout" not in [layer.name for layer in model.layers])
  assert registry.knobs("model", "resnet") == {"width": 32, "blocks": 8, "stages": 4,
                                               "stem_stride": 1,
                                                "se_ratio": 0, "dropout": 0.0}


def test_a_knob_the_model_does_not_take_is_an_error_naming_its_knobs():
  with pytest.raises(ValueError,
                     match=r"model 'simple_cnn' takes no blocks, se_ratio; its knobs: width=32, "
                           r"depth=4, dropout=0.0, stem_stride=1\. Choose another model with "
                           r"--config=<recipe>.py:model=<name>"):
    models.build(_cfg("simple_cnn", blocks=2, se_ratio=4), 3, 16)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fused_batch_norm_matches_keras_batch_norm_outputs_statistics_and_gradients(policy):
  import tensorflow as tf

  from mlc_tf.models import layers
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (8, 5, 5, 6)).astype(np.float32))
    reference, fused = keras.layers.BatchNormalization(), layers.FusedBatchNormalization()
    reference.build(x.shape)
    fused.build(x.shape)
    # gamma, beta, moving mean, var
    reference.set_weights([np.full(6, 0.5 + i, np.float32) for i in range(4)])
    fused.set_weights(reference.get_weights())
    tolerance = 1e-5 if policy == "float32" else 2e-2
    # A random upstream gradient: a per-channel constant makes every gradient but beta's zero in
    # exact arithmetic, and the test then compares two layers' rounding noise.
    upstream = tf.constant(np.random.default_rng(1).normal(size=(8, 5, 5, 6)).astype(np.float32))
    # the training call also moves the statistics the inference call uses
    for training in (True, False):
      outputs, gradients = [], []
      for layer in (reference, fused):
        with tf.GradientTape() as tape:
          tape.watch(x)
          y = tf.cast(layer(x, training=training), tf.float32)
          loss = tf.reduce_sum(y * upstream)
        outputs.append(y.numpy())
        gradients.append([g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])])
      assert outputs[1].dtype == outputs[0].dtype
      np.testing.assert_allclose(outputs[1], outputs[0], atol=tolerance, rtol=tolerance)
      for got, expected in zip(gradients[1], gradients[0]):
        # Round-off grows with the sums behind a gradient (oneDNN or not, AVX2 or AMX): compare
        # against the gradient's own scale, not a fixed epsilon.
        scale = np.abs(expected).max()
        np.testing.assert_allclose(got, expected, atol=tolerance * 10 * scale, rtol=tolerance)
      for got, expected in zip(fused.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-6)
    assert type(models.build(_cfg("resnet", blocks=2, stages=2), 3,
                             16).get_layer("stem_bn")).__name__ == \
        "FusedBatchNormalization"
  finally:
    keras.mixed_precision.set_global_policy(previous)


@pytest.mark.parametrize("native, fused_ops", [(True, 1), (False, 0)])
def test_fused_batch_norm_keeps_bfloat16_off_the_fused_op_where_the_cpu_emulates_it(
    monkeypatch, native, fused_ops):
  """oneDNN has no bfloat16 batch-norm kernel without native bfloat16 (the op aborts): Keras' layer
  there."""
  import tensorflow as tf

  from mlc_tf.models import layers
  monkeypatch.setattr(layers, "_fused_bfloat16_runs", lambda: native)
  layer = layers.FusedBatchNormalization(dtype="mixed_bfloat16")
  x = tf.constant(np.random.default_rng(0).normal(size=(4, 3, 3, 5)).astype(np.float32))
  layer.build(x.shape)
  graph = tf.function(lambda images: layer(images, training=True)).get_concrete_function(x).graph
  assert sum(op.type.startswith("FusedBatchNorm") for op in graph.get_operations()) == fused_ops
  np.testing.assert_allclose(tf.cast(layer(x, training=False), tf.float32).numpy(),
                             tf.cast(keras.layers.BatchNormalization(dtype="mixed_bfloat16")(x),
                                     tf.float32).numpy(),
                             atol=2e-2)
