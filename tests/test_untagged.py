"""The untagged part of a stream (issue 39): the PU estimate, the TaggedGate layer, mlc-calibrate
with it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO_ROOT, make_tiny_corpus
from PIL import Image

from mlc_tf.evaluate import operating_points, untagged
from mlc_tf.models import inference, layers


def calibrate(*args):
  """Runs mlc-calibrate; returns (exit status, stdout, stderr)."""
  proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.calibrate", *args], capture_output=True,
                        text=True, check=False, cwd=REPO_ROOT, timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  return proc.returncode, proc.stdout, proc.stderr


def _probs(rng, n, mean):
  """Photos whose two labels' logits are Gaussian around ``mean``: their probabilities."""
  return 1 / (1 + np.exp(-rng.normal(mean, 1.0, (n, 2))))


@pytest.mark.parametrize("no_label_share", [0.5, 0.3])
def test_the_untagged_share_of_a_known_mixture_is_estimated_within_a_few_points(no_label_share):
  rng = np.random.default_rng(0)
  labelled = _probs(rng, 1000, 1.5)  # a sample of the tagged photos (SCAR)
  untagged_count = int(4000 * no_label_share)
  stream = np.concatenate([_probs(rng, 4000 - untagged_count, 1.5),
                           _probs(rng, untagged_count, -1.5)])
  gate = untagged.fit_tagged_gate(labelled, stream)
  # the tail ratio reads a lower bound of the no-label share: here a few points under the truth
  assert -0.08 < (1 - gate.tagged_share) - no_label_share < 0.02
  low, high = gate.no_label_interval
  assert low <= 1 - gate.tagged_share <= high and high - low < 0.25
  tagged = gate.tagged_probability(stream)
  assert tagged.min() >= 0 and tagged.max() <= 1
  # the untagged photos are the ones gated out
  assert tagged[-untagged_count:].mean() < 0.3 < 0.7 < tagged[:-untagged_count].mean()
  # the stream's prevalences follow: a label's is about its tagged share times its prior there
  stream_estimate = operating_points.estimate_stream(stream, np.array([0.5, 0.5]), labelled)
  assert stream_estimate.no_label == pytest.approx(1 - gate.tagged_share)
  assert np.all(stream_estimate.prevalence < gate.tagged_share)


def test_too_few_photos_or_no_untagged_look_is_a_clear_error_not_a_guess():
  rng = np.random.default_rng(1)
  labelled = _probs(rng, 500, 1.5)
  with pytest.raises(untagged.UntaggedEstimateError, match="too few target photos.*199"):
    untagged.fit_tagged_gate(labelled, _probs(rng, 199, -1.5))
  with pytest.raises(untagged.UntaggedEstimateError, match="too few labelled photos"):
    untagged.fit_tagged_gate(labelled[:10], _probs(rng, 500, -1.5))
  # a stream of tagged photos only: nothing tells it from the labelled ones
  with pytest.raises(untagged.UntaggedEstimateError, match="no sign of untagged photos"):
    untagged.fit_tagged_gate(labelled, _probs(rng, 1000, 1.5))


def test_the_tagged_gate_layer_matches_the_maths_and_survives_a_safe_mode_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  gate = untagged.fit_tagged_gate(_probs(rng, 300, 1.5),
                                  np.concatenate([_probs(rng, 300, 1.5), _probs(rng, 300, -1.5)]))
  features = keras.Input((4,))
  network = keras.Model(features, keras.layers.Dense(2, activation="sigmoid")(features))
  priors = (np.array([0.5, 0.4]), np.array([0.3, 0.6]))
  model = inference.build(network, ["a", "b"], np.array([0.3, 0.4], np.float32), priors=priors,
                          gate={"coefficients": gate.coefficients, "bias": gate.bias,
                                "label_frequency": gate.label_frequency})
  model.save(tmp_path / "gated.keras")
  loaded = keras.saving.load_model(tmp_path / "gated.keras", safe_mode=True)
  x = rng.normal(0, 3, (64, 4)).astype(np.float32)
  raw = network.predict(x, verbose=0)
  out = loaded.predict(x, verbose=0)
  expected = (operating_points.prior_shift(raw, *priors) * gate.tagged_probability(raw)[:, None])
  np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(out["decisions"], (out["probabilities"] >= [0.3, 0.4]).astype(int))
  # the network inside is the trained one, before the shift and the gate
  np.testing.assert_allclose(inference.network(loaded).predict(x, verbose=0), raw, rtol=1e-5)
  assert isinstance(inference.tagged_gate(loaded), layers.TaggedGate)
  with pytest.raises(ValueError, match="one coefficient per label"):
    layers.TaggedGate(["a", "b"], [1.0], 0.0, 0.5)


def test_calibrate_estimates_the_untagged_share_and_its_export_gates_those_photos(
    tiny_trained, tmp_path):
  root, workdir, result = tiny_trained
  folder = tmp_path / "stream"
  make_tiny_corpus(str(tmp_path / "tagged"), num_images=30, seed=11, grayscale_every=0)
  folder.mkdir()
  for path in (tmp_path / "tagged" / "images").iterdir():  # photos like the labelled ones
    path.rename(folder / path.name)
  blank = np.full((16, 16, 3), 255, np.uint8)
  for k in range(30):  # and as many that look like none of them
    Image.fromarray(blank).save(folder / f"blank{k}.png")
  base_dir = tmp_path / "saved_models"
  common = [f"--model={workdir}", f"--data_dir={root}", f"--base_dir={base_dir}", "--name=tiny",
            "--bootstrap_samples=20", f"--target_images={folder}", "--split=all"]
  status, out, err = calibrate(*common, "--min_target_images=40")
  assert status == 0, err[-3000:]
  assert "estimated by PU learning" in out
  export_dir = base_dir / "tiny" / "1"
  report = json.loads((export_dir / "assets.extra" / "calibration.json").read_text())
  gate = report["stream"]["tagged_gate"]
  assert 0.3 < report["stream"]["no_label"]["expected"] == gate["no_label_share"] < 0.8
  metadata = json.loads((export_dir / "assets.extra" / "metadata.json").read_text())
  assert metadata["tagged_gate"]["label_frequency"] == pytest.approx(gate["label_frequency"])
  served = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
  blank_answer = served(image_bytes=tf.constant([(folder / "blank0.png").read_bytes()]))
  assert blank_answer["decisions"].numpy().sum() == 0  # gated out: no label
  raw = inference.load(workdir).predict(blank[None].astype(np.float32), verbose=0)["probabilities"]
  assert np.all(blank_answer["probabilities"].numpy() < 0.25 * raw)
  # an export that gates cannot give back the network's own probabilities: refused, clearly
  status, _, err = calibrate(f"--model={export_dir}", f"--data_dir={root}",
                             f"--base_dir={tmp_path / 'again'}")
  assert status == 1 and "calibrate the training workdir" in err and "Traceback" not in err
  # the floor holds by default; the message says why
  status, _, err = calibrate(*common[:-2], f"--target_images={folder}")
  assert status == 1 and "too few target photos" in err and "Traceback" not in err
  assert result.label_names == metadata["label_names"]


def _stream_folder(folder, tagged_corpus, num_blank):
  """The tagged corpus's images moved into ``folder`` beside ``num_blank`` white ones that look like
  none of them; returns ``folder``."""
  os.makedirs(folder)
  for name in os.listdir(os.path.join(tagged_corpus, "images")):
    os.rename(os.path.join(tagged_corpus, "images", name), os.path.join(folder, name))
  for k in range(num_blank):
    Image.fromarray(np.full((16, 16, 3), 255, np.uint8)).save(os.path.join(folder, f"blank{k}.png"))
  return folder


def test_training_with_stream_photos_exports_a_model_gated_for_their_stream(tmp_path):
  from helpers import fast_config

  from mlc_tf import config as config_lib
  from mlc_tf.serving import export
  from mlc_tf.train import training
  root = str(tmp_path / "corpus")
  make_tiny_corpus(root, num_images=100, grayscale_every=0)
  make_tiny_corpus(str(tmp_path / "tagged"), num_images=40, seed=11, grayscale_every=0)
  folder = _stream_folder(str(tmp_path / "stream"), str(tmp_path / "tagged"), 40)
  cfg = fast_config(epochs=3)
  cfg.data.val_fraction, cfg.data.test_fraction = 0.3, 0.2
  cfg.data.unlabeled = folder
  cfg.calibration.min_stream_photos = 60
  workdir = str(tmp_path / "run")
  result = training.train(cfg, root, workdir)
  stream, calibration = result.report["stream"], result.report["stream"]["calibration"]
  assert stream["adapted"] and calibration["stream"]["images"] == 80
  assert {row["policy"] for row in calibration["per_label"].values()} == {"share"}
  no_label = stream["no_label_share"]
  assert (0.3 < no_label < 0.8 and calibration["stream"]["no_label"]["expected"] == no_label
          == pytest.approx(calibration["stream"]["tagged_gate"]["no_label_share"]))
  # the labelled photos do not pay: the same seed without the stream trains the same network, so
  # the labelled test figures are the run-without's; the stream's cost is said beside them
  cfg_without = cfg.copy_and_resolve_references()
  cfg_without.data.unlabeled = None
  without = training.train(cfg_without, root, str(tmp_path / "without"))
  assert "stream" not in without.report
  assert result.report["at_calibrated"] == without.report["at_calibrated"]
  assert result.report["average_precision"] == without.report["average_precision"]
  for ours, theirs in zip(result.model.get_weights(), without.model.get_weights()):
    np.testing.assert_array_equal(ours, theirs)
  assert set(calibration["test"]) == {"images", "before", "after"}
  saved = inference.load(workdir)
  assert inference.tagged_gate(saved).no_label_share == pytest.approx(no_label)
  with open(os.path.join(workdir, "report.json")) as f:
    assert json.load(f)["stream"]["no_label_share"] == pytest.approx(no_label)
  export_dir = export.export_saved_model(result.inference_model, base_dir=str(tmp_path / "models"),
                                         name="tiny")
  with open(os.path.join(export_dir, "assets.extra", "metadata.json")) as f:
    assert json.load(f)["tagged_gate"]["no_label_share"] == pytest.approx(no_label)
  blank = np.full((1, 16, 16, 3), 255, np.float32)
  assert result.inference_model.predict(blank, verbose=0)["decisions"].sum() == 0
  # too few stream photos: said before any training, nothing written
  cfg.calibration.min_stream_photos = 81
  with pytest.raises(config_lib.ConfigError, match="holds 80 usable photos.*min_stream_photos=81"):
    training.train(cfg, root, str(tmp_path / "few"))
  assert not os.path.exists(os.path.join(tmp_path / "few", "model.keras"))
