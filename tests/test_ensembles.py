"""Ensembles as one model: the members' mean in one graph, calibrated, reported and exported as a
training run is."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import fast_config, make_tiny_corpus, run_cli

from mlc_tf import factory, models
from mlc_tf.data import pipeline
from mlc_tf.experiments import ensembles
from mlc_tf.models import inference
from mlc_tf.train import training


@pytest.fixture(scope="module")
def members(tmp_path_factory):
  """(corpus root, two workdirs): tiny models trained with seeds 0 and 1 on the same split."""
  root = str(tmp_path_factory.mktemp("ensemble_corpus"))
  make_tiny_corpus(root, num_images=40)
  workdirs = []
  for seed in (0, 1):
    cfg = fast_config(epochs=1)
    cfg.seed = seed
    workdirs.append(str(tmp_path_factory.mktemp(f"member_{seed}")))
    training.train(cfg, root, workdirs[-1])
  return root, workdirs


def corpus_jpegs(root, count=4):
  return [
      open(os.path.join(root, "images", f"im{i}.jpg"), "rb").read() for i in range(1, count + 1)
  ]


def members_mean(workdirs, pixels, flip_average=False):
  """The mean of the members' own probabilities, each network run alone (mirrored too with
  ``flip_average``)."""
  answers = []
  for workdir in workdirs:
    network = inference.network(inference.load(workdir))
    answers.append(network.predict(pixels, verbose=0))
    if flip_average:
      answers[-1] = (answers[-1] + network.predict(pixels[:, :, ::-1], verbose=0)) / 2
  return np.mean(answers, axis=0)


def test_ensemble_answers_the_members_mean_reloads_in_safe_mode_and_reports_like_training(
    members, tmp_path):
  root, workdirs = members
  out = str(tmp_path / "ensemble")
  built = ensembles.build(workdirs, root, out)
  pixels = np.random.default_rng(0).uniform(0, 255, size=(6, 16, 16, 3)).astype(np.float32)
  reloaded = inference.load(out)  # safe_mode=True
  np.testing.assert_allclose(
      reloaded.predict(pixels, verbose=0)["probabilities"], members_mean(workdirs, pixels),
      atol=1e-6)
  assert [layer.name for layer in inference.network(reloaded).layers] == [
      "image", "member_1", "member_2", "ensemble_average"]

  with open(os.path.join(out, "report.json")) as f:
    report = json.load(f)
  assert report["split"] == "test" and report["num_images"] == built.report["num_images"]
  assert report["thresholds"] == dict(zip(["cat", "dog", "sun"],
                                          inference.decision_layer(reloaded).thresholds.numpy().tolist()))
  for workdir, member in zip(workdirs, report["ensemble"]["members"]):
    with open(os.path.join(workdir, "report.json")) as f:
      own = json.load(f)
    assert member == {
        "workdir": workdir, "micro_f1": own["at_calibrated"]["micro"]["f1"],
        "macro_f1": own["at_calibrated"]["macro"]["f1"], "map": own["average_precision"]["map"]
    }
  table = ensembles.format_comparison(report)
  assert "| member 2: " in table and "**ensemble of 2**" in table

  # what mlc-evaluate, -calibrate and -export read
  cfg = factory.load_run_config(os.path.join(out, "config.json"))
  assert list(cfg.ensemble.members) == workdirs and cfg.ensemble.flip_average is False
  assert cfg.export.name == "tiny_ensemble" and cfg.data.split_seed == 0


def edited_copy(workdir, copy, file_name, edit):
  """``workdir`` copied to ``copy``, its JSON file ``file_name`` changed in place by ``edit``."""
  shutil.copytree(workdir, copy)
  with open(os.path.join(copy, file_name)) as f:
    saved = json.load(f)
  edit(saved)
  with open(os.path.join(copy, file_name), "w") as f:
    json.dump(saved, f)
  return copy


def test_members_of_another_split_are_refused_naming_the_field(members, tmp_path):
  root, workdirs = members
  other = edited_copy(workdirs[1], str(tmp_path / "other_split"), "config.json",
                      lambda saved: saved["data"].update(split_seed=7))
  out = tmp_path / "refused"
  with pytest.raises(
      ValueError, match=r"member .*other_split has data.split_seed=7, member .* 0: .*same split"):
    ensembles.build([workdirs[0], other], root, str(out))
  assert not out.exists()
  with pytest.raises(ValueError, match="at least 2"):
    ensembles.read_configs(workdirs[:1])


def test_final_fit_members_score_the_validation_split_as_training_does(members, tmp_path):
  """Members whose configs have no test split (test_fraction=0): the report scores the validation
  split."""
  root, workdirs = members
  no_test = [
      edited_copy(workdir, str(tmp_path / f"no_test_{k}"), "config.json",
                  lambda saved: saved["data"].update(test_fraction=0.0))
      for k, workdir in enumerate(workdirs)
  ]
  with pytest.raises(ValueError,
                     match="report.json scores the test split, the ensemble the validation split"):
    ensembles.build(no_test, root, str(tmp_path / "refused"))
  # as a final fit reports
  final_fits = [
      edited_copy(workdir, str(tmp_path / f"final_{k}"), "report.json",
                  lambda saved: saved.update(split="validation"))
      for k, workdir in enumerate(no_test)
  ]
  built = ensembles.build(final_fits, root, str(tmp_path / "ensemble"))
  assert built.report["split"] == "validation"
  assert "validation split" in ensembles.format_comparison(built.report)


def test_networks_of_other_input_sizes_or_label_counts_are_refused():
  cfg = fast_config().model
  small, other_size, other_labels = models.build(cfg, 3,
                                                 16), models.build(cfg, 3,
                                                                   24), models.build(cfg, 4, 16)
  with pytest.raises(ValueError, match="member 2 takes images of shape"):
    inference.ensemble([small, other_size])
  with pytest.raises(ValueError, match="member 2 answers 4 labels, member 1 3"):
    inference.ensemble([small, other_labels])
  averaged = inference.with_flip_average(small)
  # a flip-averaged member is not mirrored twice
  assert inference.with_flip_average(averaged) is averaged
  with pytest.raises(ValueError, match="at least 2 networks"):
    inference.ensemble([small])
  # one run's TTA
  assert inference.ensemble([small], flip_average=True).get_layer("flip_average") is not None


def test_mlc_ensemble_flip_average_exports_a_serving_default_that_answers_the_mirrored_mean(
    members, tmp_path):
  root, workdirs = members
  out, base_dir = str(tmp_path / "flipped"), str(tmp_path / "saved_models")
  stdout = run_cli("ensemble", f"--members={','.join(workdirs)}", f"--workdir={out}",
                   f"--data_dir={root}", "--flip_average", f"--base_dir={base_dir}",
                   "--name=tiny_pair")
  assert "**ensemble of 2, each flip-averaged**" in stdout
  exported = stdout.strip().splitlines()[-1].removeprefix("exported: ")
  assert exported == os.path.join(base_dir, "tiny_pair", "1")
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["ensemble"] == {"members": workdirs, "flip_average": True}

  jpegs = corpus_jpegs(root)
  served = tf.saved_model.load(exported).signatures["serving_default"](
      image_bytes=tf.constant(jpegs))
  pixels = np.stack([pipeline.decode_and_resize(jpeg, 16).numpy() for jpeg in jpegs])
  np.testing.assert_allclose(served["probabilities"].numpy(),
                             members_mean(workdirs, pixels, flip_average=True), atol=1e-5)
  assert served["valid"].numpy().all()


def test_one_member_with_flip_average_is_that_runs_test_time_augmentation(members, tmp_path):
  root, workdirs = members
  out = str(tmp_path / "flipped_one")
  stdout = run_cli("ensemble", f"--members={workdirs[0]}", f"--workdir={out}", f"--data_dir={root}",
                   "--flip_average", "--noexport")
  assert "**flip-averaged (test-time augmentation)**" in stdout
  pixels = np.stack([pipeline.decode_and_resize(jpeg, 16).numpy() for jpeg in corpus_jpegs(root)])
  answered = inference.load(out).predict(pixels, verbose=0)["probabilities"]
  np.testing.assert_allclose(answered, members_mean(workdirs[:1], pixels, flip_average=True),
                             atol=1e-5)
  with pytest.raises(AssertionError, match="at least 2 member workdirs"):
    run_cli("ensemble", f"--members={workdirs[0]}", f"--workdir={out}_plain", f"--data_dir={root}",
            "--noexport")
