"""Grad-CAM heat maps (mlc_tf/models/heatmaps.py): the heat where the label's evidence is, on the
project's networks and through an inference model's wrappers; a model without the layers refused;
and mlc-review's heat-map route and toggles."""

import html
import io
import os
import re

import keras
import matplotlib
import ml_collections
import numpy as np
import pytest
from helpers import make_tiny_corpus
from PIL import Image
from review_helpers import annotated_labels, suspect_rows, write_suspects

from mlc_tf.models import heatmaps, inference, registry
from mlc_tf.review import app as app_lib
from mlc_tf.review import state as state_lib

LABELS = ["red", "blue"]


def colour_detector() -> keras.Model:
  """A network whose label "red" is the mean of a red detector's map, "blue" a blue one's.

  1x1 convolutions fire on a pure red (blue) pixel only; global pooling, then
  a sigmoid unit per label on its own channel, so steep that a photo with
  either colour saturates it.
  """
  images = keras.Input((16, 16, 3), name="image")
  x = keras.layers.Rescaling(1 / 255)(images)
  x = keras.layers.Conv2D(2, 1, activation="relu", name="detect", kernel_initializer=(
      keras.initializers.Constant(np.array([[1, -1], [-1, -1], [-1, 1]], np.float32)[None, None])),
                          bias_initializer=keras.initializers.Constant(-0.3))(x)
  x = keras.layers.MaxPooling2D(2, name="pool")(x)
  x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
  head = keras.layers.Dense(2, activation="sigmoid", name="probabilities",
                            kernel_initializer=keras.initializers.Constant(np.eye(2) * 400.0),
                            bias_initializer=keras.initializers.Constant(-2.0))
  return keras.Model(images, head(x), name="colours")


def red_and_blue_photo() -> np.ndarray:
  """16x16 dark pixels, a red square in the top-left quadrant and a blue one in the bottom-right."""
  pixels = np.full((16, 16, 3), 20, np.float32)
  pixels[:8, :8] = (255, 0, 0)
  pixels[8:, 8:] = (0, 0, 255)
  return pixels


def hottest_quadrant(heat: np.ndarray) -> int:
  """0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right: the quadrant holding most heat."""
  h, w = heat.shape
  sums = [heat[:h // 2, :w // 2].sum(), heat[:h // 2, w // 2:].sum(),
          heat[h // 2:, :w // 2].sum(), heat[h // 2:, w // 2:].sum()]
  return int(np.argmax(sums))


def test_each_labels_heat_lies_where_its_evidence_is_also_through_the_inference_wrappers():
  network = colour_detector()
  cam = heatmaps.GradCam(network)
  assert cam.layer.name == "pool" and cam.uses_logits
  photo = red_and_blue_photo()
  red, blue = cam.heatmap(photo, 0), cam.heatmap(photo, 1)
  assert red.shape == blue.shape == (8, 8)
  assert red.min() >= 0 and red.max() == pytest.approx(1.0) and blue.max() == pytest.approx(1.0)
  assert hottest_quadrant(red) == 0 and hottest_quadrant(blue) == 3
  assert red[4:, 4:].max() == 0 and blue[:4, :4].max() == 0  # nothing of the other colour
  # Both labels are sure, p = 1 in float32: the probability's gradient is 0, the logit's is not.
  assert (network.predict_on_batch(photo[None]) == 1).all()

  wrapped = inference.build(
      network, LABELS, np.array([0.5, 0.5]), implications=[("red", "blue")],
      priors=(np.array([0.3, 0.3]), np.array([0.1, 0.6])),
      gate={"coefficients": [0.5, -0.5], "bias": 0.3, "label_frequency": 0.7})
  through = heatmaps.GradCam(wrapped)
  np.testing.assert_allclose(through.heatmap(photo, 0), red, atol=1e-6)
  np.testing.assert_allclose(through.heatmap(photo, 1), blue, atol=1e-6)
  # A flip-averaged network is explained by the network it averages, not by its mirrored input.
  flipped = heatmaps.GradCam(inference.with_flip_average(network))
  assert flipped.layer.name == "pool"
  np.testing.assert_allclose(flipped.heatmap(photo, 1), blue, atol=1e-6)
  with pytest.raises(IndexError, match="label index 2"):
    cam.heatmap(photo, 2)


def test_a_network_without_a_sigmoid_dense_head_is_explained_through_its_probability():
  network = colour_detector()
  probabilities = keras.layers.Activation("sigmoid")(keras.layers.Dense(2, name="logits")(
      network.get_layer("global_pool").output))
  separate = keras.Model(network.inputs, probabilities, name="separate_sigmoid")
  separate.get_layer("logits").set_weights([np.eye(2, dtype=np.float32) * 4, np.zeros(2)])
  cam = heatmaps.GradCam(separate)
  assert not cam.uses_logits and cam.layer.name == "pool"
  assert hottest_quadrant(cam.heatmap(red_and_blue_photo(), 1)) == 3


def test_a_photo_nothing_in_which_raises_the_label_has_a_cold_map():
  heat = heatmaps.GradCam(colour_detector()).heatmap(np.full((16, 16, 3), 20, np.float32), 0)
  assert heat.shape == (8, 8) and not heat.any()


@pytest.mark.parametrize("name, knobs, feature", [
    ("minimal_cnn", {}, "pool1"),  # the last 4-D output before its flatten
    ("seed_cnn", {"width": 8}, "pool4"),
    ("simple_cnn", {"width": 8}, "pool4"),
    ("resnet", {"width": 8, "blocks": 4, "stages": 4, "se_ratio": 4}, "stage4_block1_out"),
])
def test_the_projects_networks_give_a_map_at_their_last_convolution_stage(name, knobs, feature):
  network = registry.build(ml_collections.ConfigDict({"name": name, **knobs}), 3, 32)
  cam = heatmaps.GradCam(inference.build(network, ["a", "b", "c"], np.full(3, 0.5)))
  assert cam.layer.name == feature and cam.uses_logits
  photo = np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)
  heat = cam.heatmap(photo, 2)
  assert heat.ndim == 2 and heat.shape == tuple(cam.layer.output.shape[1:3])
  assert np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1


def test_a_model_without_the_layers_grad_cam_needs_is_named_not_crashed_on():
  images = keras.Input((8, 8, 3), name="image")
  dense_only = keras.Model(images, keras.layers.Dense(2, activation="sigmoid")(
      keras.layers.Flatten()(images)), name="dense_only")
  with pytest.raises(heatmaps.MissingLayerError, match="'dense_only' has no convolution layer"):
    heatmaps.GradCam(dense_only)
  two = registry.build(ml_collections.ConfigDict(
      {"name": "simple_cnn", "width": 4, "depth": 2, "first_labels": ("a",)}), 2, 16, ["a", "b"])
  with pytest.raises(heatmaps.MissingLayerError, match="nested inside simple_cnn_first"):
    heatmaps.GradCam(two)
  with pytest.raises(heatmaps.MissingLayerError, match="a SavedModel has no Keras layers"):
    heatmaps.GradCam(None)


def test_the_png_is_the_photo_with_the_heat_blended_over_it():
  photo = Image.new("RGB", (60, 30), (0, 0, 0))
  heat = np.zeros((4, 4), np.float32)
  heat[:, 2:] = 1.0  # the right half hot
  blended = Image.open(io.BytesIO(heatmaps.overlay_png(photo, heat)))
  assert blended.format == "PNG" and blended.size == (60, 30)  # the photo's size and shape
  left, right = blended.getpixel((2, 15)), blended.getpixel((57, 15))
  assert left[2] > left[0] and right[0] > right[2]  # jet: cold blue, hot red
  encoded = io.BytesIO()
  Image.fromarray(np.uint8(red_and_blue_photo())).resize((1000, 1000)).save(encoded, "PNG")
  large = Image.open(io.BytesIO(heatmaps.photo_heatmap_png(
      heatmaps.GradCam(colour_detector()), encoded.getvalue(), 1)))
  assert large.size == (heatmaps.LARGEST_SIDE, heatmaps.LARGEST_SIDE)  # the largest side kept

  def blend(pixel, heat):
    colour = np.array(matplotlib.colormaps[heatmaps.COLORMAP](heat)[:3]) * 255
    return (1 - heatmaps.OPACITY) * np.array(pixel) + heatmaps.OPACITY * colour

  # the blue label's heat is over the blue square, none over the red one
  np.testing.assert_allclose(large.getpixel((450, 450)), blend((0, 0, 255), 1.0), atol=3)
  np.testing.assert_allclose(large.getpixel((60, 60)), blend((255, 0, 0), 0.0), atol=3)


# --- the review app's heat maps (mlc-review: /photo/<id>/heatmap/<label>.png and the toggles) ---


@pytest.fixture(scope="module")
def trained_review(tiny_trained, tmp_path_factory):
  """mlc-review's app on the tiny corpus and its trained model.keras, suspects naming "cat" of
  images 1-3."""
  root, workdir, _ = tiny_trained
  folder = tmp_path_factory.mktemp("heatmap_review")
  suspects = write_suspects(folder / "suspects.csv", suspect_rows(annotated_labels(root, 40)))
  state = state_lib.load_state(root, str(folder / "corrections.csv"), workdir, suspects)
  return state, app_lib.create_app(state).test_client()


def test_a_photos_page_toggles_the_heat_map_of_each_label_the_model_gives_or_a_suspect_names(
    trained_review):
  state, client = trained_review
  decided = {name for name in state.tagger.label_names
             if state.predictions.at[1, f"decided_{name}"]}
  page = client.get("/photo/1").get_data(as_text=True)
  toggled = re.findall(r'aria-label="heat map of (\w+)"\s+data-src="([^"]+)"', page)
  assert [name for name, _ in toggled] == [
      name for name in state.tagger.label_names if name in decided | {"cat"}]
  assert dict(toggled)["cat"] == "/photo/1/heatmap/cat.png"
  assert 'id="heatmap" hidden' in page and 'value="" aria-label="no heat map" checked' in page
  answer = client.get("/photo/1/heatmap/cat.png")
  assert answer.status_code == 200 and answer.mimetype == "image/png"
  with Image.open(os.path.join(state.data_dir, "images", "im1.jpg")) as photo:
    assert Image.open(io.BytesIO(answer.data)).size == photo.size
  assert client.get("/photo/1/heatmap/cat.png").data == answer.data  # the same, from the cache
  # Without JavaScript, "Show" reloads the page with ?heatmap=cat: the heat map is in it.
  shown = client.get("/photo/1?heatmap=cat").get_data(as_text=True)
  assert 'src="/photo/1/heatmap/cat.png"' in shown
  assert re.search(r'aria-label="heat map of cat"\s+data-src="[^"]+" checked', shown)
  # A suspect's page offers its label's heat map too.
  suspect = client.get("/suspects/0").get_data(as_text=True)
  assert f'data-src="/photo/{state.suspects[0].image_id}/heatmap/cat.png"' in suspect


def test_a_heat_map_of_a_label_or_image_the_model_lacks_is_a_404_saying_so(trained_review):
  _, client = trained_review
  for url, says in [("/photo/1/heatmap/zebra.png", "the model has no label 'zebra'"),
                    ("/photo/1/heatmap/Cat.png", "names are case-sensitive"),
                    ("/photo/999/heatmap/cat.png", "no image 999 in the corpus")]:
    answer = client.get(url)
    assert answer.status_code == 404 and says in html.unescape(answer.get_data(as_text=True)), url


def test_no_model_no_heat_maps_and_a_savedmodel_or_a_dense_network_is_a_422_naming_what_lacks(
    tiny_trained, tiny_saved_model, tmp_path):
  root, _, _ = tiny_trained
  without = app_lib.create_app(state_lib.load_state(root, str(tmp_path / "c.csv"))).test_client()
  assert "Heat map" not in without.get("/photo/1").get_data(as_text=True)
  answer = without.get("/photo/1/heatmap/cat.png")
  assert answer.status_code == 404 and "no model was given" in answer.get_data(as_text=True)

  saved = app_lib.create_app(state_lib.load_state(root, str(tmp_path / "c.csv"),
                                                  tiny_saved_model)).test_client()
  page = html.unescape(saved.get("/photo/1").get_data(as_text=True))
  assert "No heat maps: the model is not a Keras model (a SavedModel has no Keras layers)" in page
  assert 'name="heatmap"' not in page
  answer = saved.get("/photo/1/heatmap/cat.png")
  assert answer.status_code == 422 and "no convolution layer" in answer.get_data(as_text=True)

  images = keras.Input((16, 16, 3), name="image")
  dense_only = keras.Model(images, keras.layers.Dense(3, activation="sigmoid")(
      keras.layers.Flatten()(images)), name="dense_only")
  inference.build(dense_only, ["cat", "dog", "sun"], np.full(3, 0.5)).save(tmp_path / "model.keras")
  dense = app_lib.create_app(state_lib.load_state(root, str(tmp_path / "c.csv"),
                                                  str(tmp_path))).test_client()
  answer = dense.get("/photo/1/heatmap/cat.png")
  assert answer.status_code == 422 and "'dense_only' has no convolution layer" in html.unescape(
      answer.get_data(as_text=True))


def test_a_photo_that_no_longer_decodes_is_a_422_naming_why(tmp_path):
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=4)
  network = registry.build(ml_collections.ConfigDict({"name": "simple_cnn", "width": 4,
                                                      "depth": 2}), 3, 16)
  inference.build(network, ["cat", "dog", "sun"], np.full(3, 0.5)).save(tmp_path / "model.keras")
  client = app_lib.create_app(state_lib.load_state(root, str(tmp_path / "c.csv"),
                                                   str(tmp_path))).test_client()
  assert client.get("/photo/2/heatmap/dog.png").status_code == 200
  with open(os.path.join(root, "images", "im1.jpg"), "wb") as f:
    f.write(b"")  # emptied since the review started
  answer = client.get("/photo/1/heatmap/dog.png")
  assert answer.status_code == 422 and "empty file" in answer.get_data(as_text=True)
