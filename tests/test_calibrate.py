"""mlc-calibrate end to end: the PriorShift layer, the adapted export, its report, and bad input."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO_ROOT, fast_config, make_tiny_corpus, run_cli, warmup_requests

from mlc_tf.data import pipeline
from mlc_tf.evaluate import operating_points
from mlc_tf.models import inference, layers
from mlc_tf.serving import export
from mlc_tf.train import training

TRAIN_PRIOR, TARGET_PRIOR = [0.5, 0.4, 0.3], [0.1, 0.4, 0.6]


def test_prior_shift_layer_matches_the_maths_and_survives_a_safe_mode_round_trip(
    tiny_trained, tmp_path):
  _, _, result = tiny_trained
  names = result.label_names
  adapted = inference.build(inference.network(result.inference_model), names,
                            np.full(3, 0.4, np.float32),
                            priors=(np.array(TRAIN_PRIOR), np.array(TARGET_PRIOR)))
  adapted.save(tmp_path / "adapted.keras")
  loaded = keras.saving.load_model(tmp_path / "adapted.keras", safe_mode=True)
  images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
  raw = result.inference_model.predict(images, verbose=0)["probabilities"]
  out = loaded.predict(images, verbose=0)
  np.testing.assert_allclose(out["probabilities"],
                             operating_points.prior_shift(raw, TRAIN_PRIOR, TARGET_PRIOR),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out["decisions"], (out["probabilities"] >= 0.4).astype(np.int32))
  # the network inside is the trained one, before the shift
  np.testing.assert_allclose(inference.network(loaded).predict(images, verbose=0), raw, rtol=1e-6)
  with pytest.raises(ValueError, match="one value in \\(0, 1\\) per label"):
    layers.PriorShift(names, TRAIN_PRIOR, [0.1, 0.0, 0.5])


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
  """Untagged photos of a stream (a fresh tiny corpus' images) plus one file that is not an
  image."""
  root = str(tmp_path_factory.mktemp("stream"))
  make_tiny_corpus(root, num_images=20, seed=7)
  images = os.path.join(root, "images")
  with open(os.path.join(images, "broken.jpg"), "wb") as f:
    f.write(b"not an image")
  return images


def calibrate(*args):
  """Runs mlc-calibrate; returns (exit status, stdout, stderr)."""
  proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.calibrate", *args], capture_output=True,
                        text=True, check=False, cwd=REPO_ROOT, timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  return proc.returncode, proc.stdout, proc.stderr


def test_adapted_export_is_the_next_version_with_shifted_probabilities_and_a_report(
    tiny_trained, stream, tmp_path):
  root, workdir, result = tiny_trained
  prevalence = tmp_path / "prevalence.csv"
  prevalence.write_text("label,prevalence\ncat,0.1\ndog,0.2\n(none),0.6\n")  # sun missing
  base_dir = str(tmp_path / "saved_models")
  common = [f"--model={workdir}", f"--data_dir={root}", f"--base_dir={base_dir}", "--name=tiny",
            "--bootstrap_samples=50"]
  status, out, err = calibrate(*common, f"--target_images={stream}", f"--prevalence={prevalence}",
                               "--policy=f1", "--policy=dog=recall:0.8")
  assert status == 0, err[-3000:]
  assert "exported: " + os.path.join(base_dir, "tiny", "1") in out
  assert "lacks sun: kept at the training prior" in err
  # its TF Serving warm-up requests carry photos of --data_dir
  photos = warmup_requests(os.path.join(base_dir, "tiny", "1"))[0][2]
  assert len(photos) == export.WARMUP_PHOTOS and set(photos) <= {
      path.read_bytes() for path in pathlib.Path(root, "images").iterdir()}

  export_dir = os.path.join(base_dir, "tiny", "1")
  with open(os.path.join(export_dir, "assets.extra", "calibration.json")) as f:
    report = json.load(f)
  stream_report = report["stream"]
  assert stream_report["images"] == 20 and [
      os.path.basename(p) for p in stream_report["skipped_images"]
  ] == ["broken.jpg"]
  assert stream_report["missing_labels"] == ["sun"] and stream_report["no_label"]["expected"] == 0.6
  rows = report["per_label"]
  assert [rows[name]["policy"] for name in result.label_names] == ["f1", "recall:0.8", "f1"]
  assert (rows["cat"]["target_prior"] == 0.1
          and rows["sun"]["target_prior"] == rows["sun"]["train_prior"])
  assert set(report["test"]) == {"images", "before", "after"}
  assert "| *no label* |" in out and "skipped 1 stream file(s)" in out

  # the export answers the shifted probabilities at the reported thresholds
  loaded = tf.saved_model.load(export_dir)
  metadata = loaded.signatures["metadata"]()
  thresholds = metadata["thresholds"].numpy()
  np.testing.assert_allclose(thresholds, [rows[name]["threshold"] for name in result.label_names],
                             rtol=1e-6)
  assert json.loads(metadata["config"].numpy())["calibration"]["policy"] == ["f1", "dog=recall:0.8"]
  with open(os.path.join(stream, "im1.jpg"), "rb") as f:
    photo = f.read()
  answer = loaded.signatures["serving_default"](image_bytes=tf.constant([photo]))
  keras_model = inference.load(workdir)
  raw = keras_model.predict(
      pipeline.decode_and_resize(tf.constant(photo), 16)[None].numpy(), verbose=0)
  train_prior = [rows[name]["train_prior"] for name in result.label_names]
  target_prior = [rows[name]["target_prior"] for name in result.label_names]
  np.testing.assert_allclose(
      answer["probabilities"].numpy(),
      operating_points.prior_shift(raw["probabilities"], train_prior, target_prior), atol=1e-5)

  # again, with the prevalence estimated: 20 photos are too few for any estimate, the untagged
  # share's or EM's alone, a clear error naming the floor; EM alone with the floor lowered then
  # gives the next version, the first one untouched
  for args in ([], ["--noestimate_untagged"]):
    status, out, err = calibrate(*common, f"--target_images={stream}", *args)
    assert status == 1 and "too few target photos to estimate the stream's prevalences: 21, " \
        "at least 200 needed" in err, err[-3000:]
  status, out, err = calibrate(*common, f"--target_images={stream}", "--noestimate_untagged",
                               "--min_target_images=20")
  assert status == 0, err[-3000:]
  assert "estimated by EM" in out and os.path.isdir(os.path.join(base_dir, "tiny", "2"))
  assert np.allclose(
      tf.saved_model.load(export_dir).signatures["metadata"]()["thresholds"].numpy(), thresholds)


@pytest.mark.parametrize("case, message", [
    ("unknown_label", "unknown label 'bird'"),
    ("empty_folder", "no image file found"),
    ("undecodable_only", "none of the 1 target file(s) is a readable image"),
    ("empty_prevalence", "holds no 'label,prevalence' row"),
    ("prevalence_without_target_images", "--prevalence needs --target_images"),
    ("no_model", "no model at"),
    ("prevalence_directory", "photos: not a file"),
    ("em_on_one_photo", "too few target photos to estimate the stream's prevalences: 1, at least "
     "200 needed"),
])
def test_bad_stream_input_is_a_clear_error_and_exports_nothing(tiny_trained, tmp_path, case,
                                                               message):
  root, workdir, _ = tiny_trained
  folder = tmp_path / "photos"
  folder.mkdir()
  if case == "undecodable_only":
    (folder / "broken.jpg").write_bytes(b"")
  elif case != "empty_folder":
    (folder / "photo.jpg").write_bytes((pathlib.Path(root) / "images" / "im1.jpg").read_bytes())
  prevalence = tmp_path / "prevalence.csv"
  prevalence.write_text({"unknown_label": "cat,0.2\nbird,0.1\n",
                         "empty_prevalence": ""}.get(case, "cat,0.2\n"))
  prevalence = {"prevalence_directory": folder, "em_on_one_photo": "estimate"}.get(case, prevalence)
  base_dir = tmp_path / "saved_models"
  status, _, err = calibrate(
      f"--model={tmp_path / 'none' if case == 'no_model' else workdir}", f"--data_dir={root}",
      f"--base_dir={base_dir}", f"--prevalence={prevalence}",
      *([] if case == "prevalence_without_target_images" else [f"--target_images={folder}"]),
      *(["--noestimate_untagged"] if case == "em_on_one_photo" else []))
  assert status == 1 and "mlc-calibrate: error: " in err and message in err, err[-3000:]
  # no help text before the one line
  assert "Traceback" not in err and "--bootstrap_samples" not in err
  assert not base_dir.exists() or not any(base_dir.rglob("saved_model.pb"))


def test_a_prevalence_file_from_a_spreadsheet_reads_past_its_byte_order_mark(tmp_path):
  path = tmp_path / "prevalence.csv"
  path.write_bytes("label,prevalence\ncat,0.25\n".encode("utf-8-sig"))
  read = operating_points.read_prevalence(str(path), ["cat", "dog"], np.array([0.5, 0.5]))
  assert read.values.tolist() == [0.25, 0.5] and read.missing == ["dog"]


def test_a_final_fits_workdir_is_calibrated_without_the_test_comparison(tiny_trained, tmp_path):
  root, workdir, _ = tiny_trained
  final = tmp_path / "final"
  final.mkdir()
  shutil.copy(os.path.join(workdir, "model.keras"), final)
  cfg = json.loads((pathlib.Path(workdir) / "config.json").read_text())
  cfg["data"]["test_fraction"] = 0.0  # what a final fit's workdir holds
  (final / "config.json").write_text(json.dumps(cfg))
  status, out, err = calibrate(f"--model={final}", f"--data_dir={root}",
                               f"--base_dir={tmp_path / 'saved'}", "--bootstrap_samples=10")
  assert status == 0, err[-3000:]
  assert "no test split (a final fit)" in err and "exported:" in out


def test_a_training_config_sets_the_policy_the_model_is_saved_with(tiny_corpus, tmp_path):
  root, _ = tiny_corpus
  cfg = fast_config(epochs=1)
  cfg.calibration.policy = ("0.3", "dog=0.7")
  result = training.train(cfg, root, str(tmp_path / "workdir"))
  np.testing.assert_allclose(result.thresholds, [0.3, 0.7, 0.3])
  np.testing.assert_allclose(
      inference.decision_layer(result.inference_model).thresholds.numpy(), [0.3, 0.7, 0.3])
  assert result.report["thresholds"] == pytest.approx({"cat": 0.3, "dog": 0.7, "sun": 0.3})
  # mlc-evaluate reports at the model's own operating points
  out = run_cli("evaluate", f"--model={tmp_path / 'workdir'}", f"--data_dir={root}",
                f"--output_dir={tmp_path / 'evaluation'}")
  assert "| dog |" in out and "| 0.700 |" in out


def test_an_export_is_calibrated_without_its_workdir_and_a_stream_shift_is_undone_again(
    tiny_trained, tiny_saved_model, stream, tmp_path):
  root, workdir, result = tiny_trained
  # what a deployment holds: saved_models/<name>/<version>, no workdir
  deployed = tmp_path / "deployed" / "tiny"
  shutil.copytree(tiny_saved_model, deployed / "1")
  prevalence = tmp_path / "prevalence.csv"
  prevalence.write_text("label,prevalence\ncat,0.1\ndog,0.2\nsun,0.6\n")
  base_dir = tmp_path / "saved_models"
  status, out, err = calibrate(f"--model={deployed}", f"--data_dir={root}",
                               f"--base_dir={base_dir}", "--name=tiny", f"--target_images={stream}",
                               f"--prevalence={prevalence}", "--bootstrap_samples=20")
  assert status == 0, err[-3000:]
  adapted_dir = base_dir / "tiny" / "1"
  assert f"exported: {adapted_dir}" in out
  with open(adapted_dir / "assets.extra" / "calibration.json") as f:
    rows = json.load(f)["per_label"]
  with open(adapted_dir / "assets.extra" / "metadata.json") as f:
    assert json.load(f)["prior_shift"]["target_prior"] == [0.1, 0.2, 0.6]
  shutil.rmtree(tmp_path / "deployed")  # the new export stands on its own

  # whole intensities, as decoded photos have (predict_pixels rounds)
  images = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 3)).astype(np.float32)
  raw = result.inference_model.predict(images, verbose=0)["probabilities"]
  train_prior = [rows[name]["train_prior"] for name in result.label_names]
  answer = tf.saved_model.load(
      str(adapted_dir)).signatures["predict_pixels"](pixels=tf.constant(images))
  np.testing.assert_allclose(answer["probabilities"].numpy(),
                             operating_points.prior_shift(raw, train_prior, [0.1, 0.2, 0.6]),
                             atol=1e-5)
  np.testing.assert_allclose(tf.saved_model.load(str(adapted_dir)).signatures["metadata"]()["thresholds"].numpy(),
                             [rows[name]["threshold"] for name in result.label_names], rtol=1e-6)

  # the adapted export calibrated again for no stream: the network's own probabilities, at the new
  # thresholds
  status, out, err = calibrate(f"--model={adapted_dir}", f"--data_dir={root}",
                               f"--base_dir={base_dir}", "--name=tiny", "--policy=0.35",
                               "--bootstrap_samples=20")
  assert status == 0, err[-3000:]
  again = tf.saved_model.load(str(base_dir / "tiny" / "2"))
  answer = again.signatures["predict_pixels"](pixels=tf.constant(images))
  np.testing.assert_allclose(answer["probabilities"].numpy(), raw, atol=1e-5)
  np.testing.assert_array_equal(answer["decisions"].numpy(), (answer["probabilities"].numpy()
                                                              >= 0.35).astype(int))
  assert again.signatures["metadata"]()["max_image_pixels"].numpy() == export.MAX_IMAGE_PIXELS


def test_an_export_that_does_not_record_its_rules_and_prior_shift_is_refused(
    tiny_trained, tiny_saved_model, tmp_path):
  root, _, _ = tiny_trained
  old = tmp_path / "old"
  shutil.copytree(tiny_saved_model, old)
  metadata_path = old / "assets.extra" / "metadata.json"
  metadata = json.loads(metadata_path.read_text())
  del metadata["label_rules"], metadata["prior_shift"]  # what exports before these keys hold
  metadata_path.write_text(json.dumps(metadata))
  status, _, err = calibrate(f"--model={old}", f"--data_dir={root}",
                             f"--base_dir={tmp_path / 'saved'}")
  assert (status == 1 and "calibrate the training workdir" in err
          and "Traceback" not in err), err[-3000:]
  assert not (tmp_path / "saved").exists()


def test_a_model_of_another_corpus_without_data_dir_says_data_dir_is_needed(tiny_trained,
                                                                             tmp_path):
  """Its config names no corpus (mlc-train's --data_dir is not kept): not the demo corpus, whose
  labels it does not tag."""
  _, workdir, _ = tiny_trained
  status, _, err = calibrate(f"--model={workdir}", f"--base_dir={tmp_path}")
  assert status == 1 and "--data_dir is needed" in err and "cat, dog, sun" in err, err[-3000:]
  assert "Traceback" not in err and not os.listdir(tmp_path)
