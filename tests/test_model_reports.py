"""mlc-evaluate and mlc-predict on a model trained for one epoch on a tiny corpus."""

import csv
import json
import os
import pathlib
import re
import subprocess
import sys

import image_bytes
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import REPO_ROOT, fast_config, make_tiny_corpus, run_cli

from mlc_tf.data import split_corpus
from mlc_tf.evaluate import metrics, reports, scoring
from mlc_tf.models import inference
from mlc_tf.serving import export, prediction
from mlc_tf.train import training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("corpus"))
  make_tiny_corpus(root, num_images=40)
  workdir = str(tmp_path_factory.mktemp("workdir"))
  result = training.train(fast_config(epochs=1), root, workdir)
  return root, workdir, result


def test_write_evaluation_report_and_figures(trained, tmp_path):
  root, workdir, result = trained
  cfg = fast_config(epochs=1)
  data = split_corpus.load_and_split(root, cfg)
  model = inference.load(workdir)
  layer = inference.decision_layer(model)
  answers = reports.predict_answers(model, data.test, layer.label_names, cfg)
  report, written = reports.write_evaluation(str(tmp_path), data.test, answers,
                                             layer.thresholds.numpy(),
                                             layer.label_names,
                                             history_csv=os.path.join(workdir, "history.csv"))
  interval = report["at_calibrated"].pop("interval_95")
  # Same model, same test split: the same numbers as training's own report (which also times the
  # run).
  assert report == {key: value for key, value in result.report.items() if key != "training"}
  for average in ("micro", "macro"):
    low, high = interval[f"{average}_f1"]
    assert low <= report["at_calibrated"][average]["f1"] <= high
  names = {os.path.basename(p) for p in written}
  assert {"report.md", "report.json", "training_curves.png", "pr_curves.png", "label_counts.png",
          "samples.png"} <= names
  assert ("no_label.png" in names) == bool((data.test[layer.label_names].sum(axis=1) == 0).any())
  assert all(os.path.getsize(p) > 0 for p in written)
  assert "mAP" in open(tmp_path / "report.md").read() and "![pr_curves.png](pr_curves.png)" in open(
      tmp_path / "report.md").read()


def test_a_one_label_corpus_trains_reports_and_evaluates(tmp_path):
  """A binary tagger is a multi-label tagger with one label: no report or figure fails on it."""
  root, workdir = str(tmp_path / "corpus"), tmp_path / "run"
  make_tiny_corpus(root, labels=("cat",), num_images=40)
  run_cli("train", f"--data_dir={root}", f"--workdir={workdir}", "--config.data.image_size=16",
          "--config.train.epochs=1", "--config.train.batch_size=8", "--noexport")
  report = json.loads((workdir / "report.json").read_text())
  assert list(report["at_calibrated"]["per_label"]) == ["cat"]
  assert report["at_calibrated"]["micro"] == {
      k: report["at_calibrated"]["per_label"]["cat"][k] for k in ("precision", "recall", "f1")}
  run_cli("evaluate", f"--model={workdir}", f"--data_dir={root}",
          f"--output_dir={tmp_path / 'evaluation'}")
  assert {"report.md", "pr_curves.png", "label_counts.png", "samples.png"} <= set(
      os.listdir(tmp_path / "evaluation"))


def test_a_training_result_carries_what_its_inference_model_answers(trained):
  root, _, result = trained
  cfg = fast_config(epochs=1)
  data = split_corpus.load_and_split(root, cfg)
  names = result.label_names
  for part, answers in ((data.val, result.val), (data.test, result.test)):
    outputs = scoring.predict(result.inference_model, part, names, cfg)
    np.testing.assert_allclose(answers.probabilities, outputs["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(answers.decisions, outputs["decisions"])
  # The report scores those decisions, the ones the export serves.
  assert result.report["at_calibrated"]["per_label"] == metrics.classification_report(
      data.test[names].to_numpy(), result.test.decisions, names)["per_label"]


def test_split_frame_all_is_the_whole_corpus(trained):
  root, _, _ = trained
  data = split_corpus.load_and_split(root, fast_config())
  assert list(reports.split_frame(data, "all").index) == list(range(1, 41))
  with pytest.raises(ValueError, match="unknown split"):
    reports.split_frame(data, "holdout")


def test_mlc_evaluate_rebuilds_the_training_split(trained, tmp_path):
  root, workdir, result = trained
  out = str(tmp_path / "eval")
  stdout = run_cli("evaluate", f"--model={workdir}/model.keras", f"--data_dir={root}",
                   f"--output_dir={out}")
  assert "Hamming loss" in stdout
  written = json.load(open(os.path.join(out, "report.json")))
  assert written["num_images"] == result.report["num_images"]
  assert written["at_calibrated"]["micro"]["f1"] == pytest.approx(
      result.report["at_calibrated"]["micro"]["f1"])
  assert {"report.md", "pr_curves.png", "label_counts.png", "samples.png",
          "training_curves.png"} <= set(
      os.listdir(out))


@pytest.fixture
def image_folder(trained, tmp_path):
  root, _, _ = trained
  folder = tmp_path / "photos"
  folder.mkdir()
  for i in (1, 2, 5, 7, 9):  # im5 is grayscale
    (folder / f"im{i}.jpg").write_bytes(open(os.path.join(root, "images", f"im{i}.jpg"),
                                             "rb").read())
  (folder / "broken.jpg").write_text("not an image")
  (folder / "notes.txt").write_text("ignored: not an image extension")
  return str(folder)


def _expected(result, paths):
  frame = pd.DataFrame({"path": paths, **{name: 0 for name in result.label_names}})
  return scoring.predict(result.model, frame, result.label_names, fast_config())


def _read(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["keras", "saved_model"])
def test_predict_to_csv_streams_and_skips_unreadable_files(trained, image_folder, tmp_path, kind):
  _, workdir, result = trained
  if kind == "keras":
    predictor = prediction.load_predictor(workdir)
  else:
    export.export_saved_model(result.inference_model, label_names=result.label_names, image_size=16,
                              base_dir=str(tmp_path / "saved"), name="tiny")
    predictor = prediction.load_predictor(str(tmp_path / "saved" / "tiny"))  # the highest version
    assert isinstance(predictor, prediction.SavedModelPredictor)
  paths = prediction.list_images([image_folder])
  assert [os.path.basename(p) for p in paths] == ["broken.jpg", "im1.jpg", "im2.jpg", "im5.jpg",
                                                  "im7.jpg", "im9.jpg"]
  output = str(tmp_path / "out.csv")
  summary = prediction.predict_to_csv(predictor, paths, output, batch_size=2, probabilities=True)
  assert summary.written == 5 and [os.path.basename(p) for p in summary.skipped] == ["broken.jpg"]
  rows = _read(output)
  assert list(rows[0]) == ["file", "cat", "dog", "sun", "prob_cat", "prob_dog", "prob_sun"]
  good = [p for p in paths if not p.endswith("broken.jpg")]
  assert [r["file"] for r in rows] == good
  probs = np.array([[float(r[f"prob_{n}"]) for n in result.label_names] for r in rows])
  np.testing.assert_allclose(probs, _expected(result, good), atol=1e-5)
  decisions = np.array([[int(r[n]) for n in result.label_names] for r in rows])
  np.testing.assert_array_equal(decisions, metrics.decide(probs, result.thresholds))


def test_predictions_csv_escapes_cells_a_spreadsheet_would_run_as_formulas(
    trained, image_folder, tmp_path, monkeypatch):
  _, workdir, _ = trained
  photo = (pathlib.Path(image_folder) / "im1.jpg").read_bytes()
  folder = tmp_path / "hostile"
  folder.mkdir()
  names = ["=HYPERLINK(1).jpg", "+1.jpg", "-1.jpg", "@SUM(1).jpg", "ok.jpg"]
  for name in names:
    (folder / name).write_bytes(photo)
  output = tmp_path / "out.csv"
  prediction.predict_to_csv(prediction.load_predictor(workdir), [str(folder / n) for n in names],
                            str(output))
  cells = [row["file"] for row in _read(output)]
  assert cells == [str(folder / n) for n in names]  # an absolute path starts with "/": safe
  monkeypatch.chdir(folder)
  prediction.predict_to_csv(prediction.load_predictor(workdir), names, str(output))
  assert [row["file"] for row in _read(output)] == [
      "'=HYPERLINK(1).jpg", "'+1.jpg", "'-1.jpg", "'@SUM(1).jpg", "ok.jpg"]


def test_mlc_predict_on_a_glob(trained, image_folder, tmp_path):
  _, workdir, result = trained
  output = str(tmp_path / "tags.csv")
  stdout = run_cli("predict", f"--model={workdir}", f"--images={image_folder}/im*.jpg",
                   f"--output={output}")
  assert "5 image(s), 3 label(s)" in stdout
  rows = _read(output)
  assert list(rows[0]) == ["file", "cat", "dog", "sun"] and len(rows) == 5
  with pytest.raises(FileNotFoundError, match="no image file"):
    prediction.list_images([os.path.join(image_folder, "*.png")])


def test_mlc_predict_walks_a_recursive_glob_once_per_real_folder_and_skips_what_it_cannot_read(
    trained, image_folder, tmp_path):
  """Links back up (two never end with glob's own walk), a FIFO (a read blocks for good), a dangling
  link and a folder named .jpg: one row per photo, the rest skipped with their reason."""
  _, workdir, _ = trained
  sub = pathlib.Path(image_folder) / "sub"
  sub.mkdir()
  (sub / "im3.jpg").write_bytes((pathlib.Path(image_folder) / "im1.jpg").read_bytes())
  (sub / "up").symlink_to("..")
  (sub / "up_again").symlink_to("..")
  os.mkfifo(sub / "pipe.jpg")
  (sub / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
  (sub / "album.jpg").mkdir()
  output = tmp_path / "tags.csv"
  stdout = run_cli("predict", f"--model={workdir}", f"--images={image_folder}/**/*.jpg",
                   f"--output={output}", timeout=300)
  files = [row["file"] for row in _read(output)]
  assert sorted(os.path.relpath(f, image_folder) for f in files) == [
      "im1.jpg", "im2.jpg", "im5.jpg", "im7.jpg", "im9.jpg", os.path.join("sub", "im3.jpg")]
  assert "skipped 4 file(s)" in stdout
  for name, reason in (("pipe.jpg", "not a regular file: a named pipe (FIFO)"),
                       ("album.jpg", "Is a directory"),
                       ("gone.jpg", "No such file"), ("broken.jpg", "not a JPEG")):
    assert re.search(f"{name} \\([^)]*{re.escape(reason)}", stdout), stdout


def test_mlc_predict_skips_bombs_and_palette_bmps_saying_why_and_counts_what_it_leaves_out(
    trained, image_folder, tmp_path):
  _, workdir, _ = trained
  folder = pathlib.Path(image_folder)
  # a 1 x 1 screen, a 41 M pixel frame
  (folder / "bomb.gif").write_bytes(image_bytes.gif_bomb(6400))
  (folder / "palette.bmp").write_bytes(image_bytes.palette_bmp(np.full((6, 10, 3), 99, np.uint8)))
  (folder / "photo.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")
  output = str(tmp_path / "tags.csv")
  stdout = run_cli("predict", f"--model={workdir}", f"--images={image_folder}",
                   f"--output={output}")
  assert [os.path.basename(r["file"]) for r in _read(output)] == ["im1.jpg", "im2.jpg", "im5.jpg",
                                                                  "im7.jpg", "im9.jpg"]
  assert "skipped 3 file(s)" in stdout and "bomb.gif (larger than the 40 MP limit" in stdout, stdout
  assert "palette.bmp (palette BMP is not supported" in stdout
  assert "left out 2 file(s)" in stdout and "notes.txt" in stdout and "photo.webp" in stdout


class _FailingPredictor:
  """Tags one batch, then fails: a run killed or crashed half-way."""
  label_names = ["cat"]

  def predict(self, paths, batch_size):
    yield paths[:1], np.array([[0.9]]), np.array([[1]])
    raise RuntimeError("killed")


def test_predict_to_csv_replaces_the_output_only_when_done_and_refuses_where_it_cannot_write(
    tmp_path):
  output = tmp_path / "tags.csv"
  output.write_text("file,cat\nold.jpg,1\n")
  with pytest.raises(RuntimeError, match="killed"):
    prediction.predict_to_csv(_FailingPredictor(), ["a.jpg", "b.jpg"], str(output))
  assert output.read_text() == "file,cat\nold.jpg,1\n" and os.listdir(tmp_path) == ["tags.csv"]
  with pytest.raises(ValueError, match="is a directory"):
    prediction.predict_to_csv(_FailingPredictor(), ["a.jpg"], str(tmp_path))
  with pytest.raises(ValueError, match="which is a file"):
    prediction.predict_to_csv(_FailingPredictor(), ["a.jpg"], str(output / "sub" / "tags.csv"))


def test_mlc_predict_on_a_folder_without_a_readable_image_fails_and_writes_nothing(
    trained, tmp_path):
  _, workdir, _ = trained
  folder = tmp_path / "nothing"
  folder.mkdir()
  (folder / "broken.jpg").write_text("not an image")
  output = tmp_path / "tags.csv"
  proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.predict", f"--model={workdir}",
                         f"--images={folder}",
                         f"--output={output}"], capture_output=True, text=True, cwd=REPO_ROOT,
                        timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert (proc.returncode == 1
          and "none of the 1 file(s) is an image the model can read" in proc.stderr)
  assert "Traceback" not in proc.stderr and not output.exists()


def test_a_saved_model_without_metadata_is_refused_clearly(tmp_path):
  module = tf.Module()
  module.serve = tf.function(
      lambda image_bytes: {"probabilities": tf.zeros([tf.size(image_bytes), 2])},
                             input_signature=[tf.TensorSpec([None], tf.string)])
  path = str(tmp_path / "foreign")
  tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
  with pytest.raises(ValueError, match="no 'metadata' signature naming its labels"):
    prediction.load_predictor(path)
