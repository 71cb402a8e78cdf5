"""Self-training: a folder of untagged images joins the training split with a teacher's answers as
its targets."""

import json
import os

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf
from helpers import fast_config, make_tiny_corpus, run_cli
from PIL import Image

from mlc_tf import registry
from mlc_tf.data import balance, label_rules, pipeline, split_corpus, unlabeled
from mlc_tf.models import inference
from mlc_tf.train import losses, self_training

NUM_UNTAGGED = 10


def _untagged_folder(root, nested=False, corrupt=True):
  """NUM_UNTAGGED images (every third a PNG, one grayscale), a corrupt .jpg and a notes.txt; returns
  ``root``."""
  folder = os.path.join(root, "images") if nested else root
  os.makedirs(folder)
  rng = np.random.default_rng(1)
  for i in range(NUM_UNTAGGED):
    image = Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    image = image.convert("L") if i == 1 else image
    image.save(os.path.join(folder, f"photo{i:02d}.{'png' if i % 3 == 0 else 'jpg'}"))
  if corrupt:
    with open(os.path.join(folder, "broken.jpg"), "wb") as f:
      f.write(b"\xff\xd8\xff\xe0 not a whole JPEG")
  with open(os.path.join(folder, "notes.txt"), "w") as f:
    f.write("not an image\n")
  return root


def _student(corpus_root, folder, teacher_workdir, **self_training_fields):
  cfg = fast_config()
  cfg.data.unlabeled = folder
  cfg.self_training.teacher = teacher_workdir
  cfg.self_training.update(self_training_fields)
  return cfg, split_corpus.load_and_split(corpus_root, cfg)


def _teacher_outputs(teacher_workdir, paths):
  """What the teacher answers for ``paths``, computed here image by image, as the expected
  targets."""
  teacher = inference.load(teacher_workdir)
  images = np.stack([pipeline.decode_and_resize(tf.io.read_file(path),
                                                16).numpy() for path in paths])
  return {name: np.asarray(value) for name, value in teacher.predict(images, verbose=0).items()}


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "images_subfolder"])
def test_folder_is_listed_and_audited_with_the_corrupt_file_a_counted_skip(tmp_path, nested):
  frame, audit = unlabeled.load_unlabeled(_untagged_folder(str(tmp_path / "untagged"),
                                                           nested=nested))
  assert len(frame) == NUM_UNTAGGED and audit.num_images == audit.num_drawn == NUM_UNTAGGED + 1
  assert [os.path.basename(path) for path, _ in audit.undecodable_images] == ["broken.jpg"]
  assert audit.not_images == ["notes.txt"] and audit.image_formats["png"] == 4
  warnings = " ".join(audit.warnings())
  assert ("1 image(s) cannot be decoded and were skipped (broken.jpg" in warnings
          and "notes.txt" in warnings)
  assert list(frame.columns) == ["path"] and not frame["path"].str.endswith("broken.jpg").any()


def test_max_images_draws_a_reproducible_random_subset(tmp_path):
  root = _untagged_folder(str(tmp_path / "untagged"), corrupt=False)
  frame, audit = unlabeled.load_unlabeled(root, max_images=4, seed=3)
  again, _ = unlabeled.load_unlabeled(root, max_images=4, seed=3)
  everything, _ = unlabeled.load_unlabeled(root)
  assert (audit.num_images, audit.num_drawn, len(frame)) == (NUM_UNTAGGED, 4, 4)
  assert list(frame.index) == list(again.index) and set(frame.index) < set(everything.index)


@pytest.mark.parametrize("targets", ["soft", "hard"])
def test_untagged_images_join_training_only_with_the_teachers_answers(
    tiny_trained, tmp_path, targets):
  corpus_root, teacher_workdir, _ = tiny_trained
  folder = _untagged_folder(str(tmp_path / "untagged"))
  cfg, data = _student(corpus_root, folder, teacher_workdir, targets=targets)
  workdir = str(tmp_path / "student")
  joined = self_training.with_pseudo_labels(cfg, data, workdir)

  names = data.label_names
  # thresholds and the report: labelled only
  assert joined.val.equals(data.val) and joined.test.equals(data.test)
  labelled, pseudo = joined.train.iloc[:len(data.train)], joined.train.iloc[len(data.train):]
  np.testing.assert_array_equal(labelled[names].to_numpy(), data.train[names].to_numpy())
  assert list(labelled.index) == list(data.train.index) and len(pseudo) == NUM_UNTAGGED
  expected = _teacher_outputs(teacher_workdir, pseudo["path"].tolist())
  if targets == "soft":
    np.testing.assert_allclose(pseudo[names].to_numpy(), expected["probabilities"], rtol=0,
                               atol=1e-6)
  else:
    np.testing.assert_array_equal(pseudo[names].to_numpy(), expected["decisions"])
  assert pseudo[names].dtypes.eq(np.float32).all()
  assert joined.unlabeled["joined"] == NUM_UNTAGGED and joined.unlabeled["skipped_undecodable"] == 1
  with open(os.path.join(workdir, self_training.AUDIT_FILE)) as f:
    assert [os.path.basename(path)
            for path, _ in json.load(f)["undecodable_images"]] == ["broken.jpg"]


def test_clear_errors_for_a_missing_or_mismatched_teacher(tiny_trained, tmp_path):
  corpus_root, teacher_workdir, _ = tiny_trained
  folder = _untagged_folder(str(tmp_path / "untagged"), corrupt=False)
  cases = [({"teacher": None}, {}, "config.self_training.teacher is not"),
           ({"teacher": str(tmp_path / "nowhere")}, {}, "no trained model at"),
           ({"targets": "probable"}, {}, "expected one of"),
           ({}, {"labels": ["cat", "dog"]},
            r"answers for labels \['cat', 'dog', 'sun'\], this run trains"),
           ({}, {"split_seed": 1}, "data.split_seed: teacher 0, this run 1")]
  for fields, data_fields, message in cases:
    cfg = fast_config()
    cfg.data.update(data_fields)
    cfg.data.unlabeled = folder
    cfg.self_training.teacher = teacher_workdir
    cfg.self_training.update(fields)
    with pytest.raises(self_training.SelfTrainingError, match=message):
      self_training.with_pseudo_labels(cfg, split_corpus.load_and_split(corpus_root, cfg))
  # the split_seed case, allowed: a loud warning, then it joins
  cfg.self_training.allow_split_mismatch = True
  joined = self_training.with_pseudo_labels(cfg, split_corpus.load_and_split(corpus_root, cfg))
  assert joined.unlabeled["joined"] == NUM_UNTAGGED


def test_soft_targets_through_label_rules_balance_losses_and_metrics():
  names = ["baby", "people", "sea"]
  soft = np.array([[0.6, 0.3, 0.2], [0.1, 0.7, 0.4]], np.float32)
  fixed = label_rules.apply_implications(soft, names, [("baby", "people")])
  # people >= baby, nothing summed
  np.testing.assert_allclose(fixed, [[0.6, 0.6, 0.2], [0.1, 0.7, 0.4]])
  np.testing.assert_array_equal(label_rules.apply_implications(np.array([[1, 0, 0]], np.uint8),
                                                               names,
                                                               [("baby", "people")]), [[1, 1, 0]])
  # only people counts: 0.7
  assert balance.repeat_factors(soft, 0.9)[1] == pytest.approx(np.sqrt(0.9 / 0.5))
  for name in registry.names("loss"):
    cfg = ml_collections.ConfigDict(
        {"name": name, **({"class_weight_power": 0.5} if name == "weighted_bce" else {})})
    assert np.isfinite(
        float(losses.make_loss(cfg, names, soft)(soft, np.full_like(soft, 0.4)))), name
  f1 = keras.metrics.F1Score(average="micro", threshold=0.5)  # training's metric, on soft targets
  f1.update_state(soft, soft)
  assert np.isfinite(float(f1.result()))
  augment = ml_collections.ConfigDict({"mixup": 0.2, "cutmix": 1.0})
  images = np.array([_png(value) for value in (10, 200)])
  ds = pipeline.make_dataset(tf.data.Dataset.from_tensor_slices(images), soft, image_size=8,
                             batch_size=2,
                             training=False)  # uint8 image cache; labels travel as they are
  np.testing.assert_array_equal(np.concatenate([y for _, y in ds.as_numpy_iterator()]), soft)
  mixed = pipeline.make_dataset(tf.data.Dataset.from_tensor_slices(images), soft, image_size=8,
                                batch_size=2,
                                training=True, augment=augment)
  _, y = next(mixed.as_numpy_iterator())
  assert y.dtype == np.float32 and ((0 <= y) & (y <= 1)).all()


def _png(value):
  """An 8x8 gray PNG of ``value``, encoded."""
  return tf.io.encode_png(tf.fill([8, 8, 3], tf.constant(value, tf.uint8))).numpy()


def test_mlc_train_with_untagged_images_writes_model_and_report(tiny_trained, tmp_path):
  corpus_root, teacher_workdir, _ = tiny_trained
  folder = _untagged_folder(str(tmp_path / "untagged"), nested=True)
  workdir = str(tmp_path / "student")
  run_cli("train", "--config=configs/demo.py", f"--data_dir={corpus_root}", f"--workdir={workdir}",
          "--noexport",
          "--config.data.image_size=16", "--config.model.width=4", "--config.model.depth=2",
          "--config.train.epochs=1", "--config.train.batch_size=8",
          "--config.data.val_fraction=0.25",
          "--config.data.test_fraction=0.25", "--config.augment.mixup=0.2",
          f"--config.data.unlabeled={folder}",
          f"--config.self_training.teacher={teacher_workdir}",
          "--config.self_training.targets=soft", "--config.calibration.adapt_to_unlabeled=False")
  assert os.path.isfile(os.path.join(workdir, "model.keras"))
  with open(os.path.join(workdir, "report.json")) as f:
    report = json.load(f)
  assert report["split"] == "test" and report["training"]["epochs"] == 1
  assert (report["self_training"]["joined"] == NUM_UNTAGGED
          and report["self_training"]["skipped_undecodable"] == 1)
  assert os.path.isfile(os.path.join(workdir, self_training.AUDIT_FILE))


def test_real_untagged_photos_are_listed_and_all_decode(flickr14_unlabeled_dir):
  frame, audit = unlabeled.load_unlabeled(flickr14_unlabeled_dir)
  assert len(frame) == audit.num_images == 5000 and audit.warnings() == []
  assert audit.image_formats == {"jpeg": 5000}
  grayscale = 0
  for path in frame["path"]:
    with Image.open(path) as image:
      grayscale += image.mode == "L"
  # single-channel JPEGs: decoded to 3 channels like the rest (the audit decoded them all)
  assert grayscale == 316


def test_teacher_epochs_trains_the_teacher_first_in_the_same_run_and_a_rerun_reuses_it(tmp_path):
  from mlc_tf.train import training
  corpus_root = str(tmp_path / "corpus")
  make_tiny_corpus(corpus_root, num_images=24)
  cfg = fast_config(epochs=1)
  cfg.data.unlabeled = _untagged_folder(str(tmp_path / "untagged"))
  cfg.self_training.teacher_epochs = 2
  cfg.calibration.adapt_to_unlabeled = False  # too few photos to estimate their stream from
  workdir = str(tmp_path / "student")
  result = training.train(cfg, corpus_root, workdir)
  teacher_dir = os.path.join(workdir, self_training.TEACHER_DIR)
  with open(os.path.join(teacher_dir, "report.json")) as f:
    teacher_report = json.load(f)
  with open(os.path.join(teacher_dir, "config.json")) as f:
    teacher_config = json.load(f)
  # The teacher trained its own epochs on the labelled images alone, split as the student.
  assert teacher_report["training"]["epochs"] == 2 and teacher_config["data"]["unlabeled"] is None
  assert (teacher_report["training"]["train_images"]
          == result.report["self_training"]["labelled_train"])
  assert teacher_config["data"]["split_seed"] == cfg.data.split_seed
  summary = result.report["self_training"]
  assert summary["teacher"] == teacher_dir and summary["joined"] == NUM_UNTAGGED
  assert summary["teacher_training"] == teacher_report["training"]
  assert result.report["training"]["epochs"] == 1
  assert result.report["training"]["train_images"] == summary["labelled_train"] + NUM_UNTAGGED
  # A rerun (e.g. after the student crashed) keeps the finished teacher instead of training it
  # again.
  modified = os.path.getmtime(os.path.join(teacher_dir, "model.keras"))
  again = training.train(cfg, corpus_root, str(tmp_path / "student"))
  assert os.path.getmtime(os.path.join(teacher_dir, "model.keras")) == modified
  assert again.report["self_training"]["teacher_training"] == teacher_report["training"]
