"""The exported SavedModel's contract, checked the way TF Serving and plain TensorFlow users meet
it."""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import image_bytes
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import REPO_ROOT, fast_config, run_cli, warmup_requests
from PIL import Image

from mlc_tf.data import image_formats, pipeline
from mlc_tf.evaluate import scoring
from mlc_tf.models import inference
from mlc_tf.serving import export, signatures

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
VALID_FILES = ("color.jpg", "gray.jpg", "rgba.png", "animated.gif", "picture.bmp", "deep16.png")
INVALID_FILES = ("text.jpg", "empty.jpg", "truncated.jpg")

# Runs in a fresh interpreter: only TensorFlow and the SavedModel, never mlc_tf.
CONTRACT_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf

    def plain(tensor):
      return np.asarray(tensor.numpy()).tolist()

    model = tf.saved_model.load(sys.argv[1])
    serve = model.signatures["serving_default"]
    images = [open(path, "rb").read() for path in sys.argv[2:]]
    print(json.dumps({
        "batch": {k: plain(v) for k, v in serve(image_bytes=tf.constant(images)).items()},
        "empty": {k: v.shape.as_list()
                  for k, v in serve(image_bytes=tf.constant([], tf.string)).items()},
        "metadata": {k: plain(v) for k, v in model.signatures["metadata"]().items()},
        "imported_mlc_tf": any(name.startswith("mlc_tf") for name in sys.modules),
    }, default=bytes.decode))
""")


@pytest.fixture(scope="module")
def image_files(tiny_trained, tmp_path_factory):
  """{file name: path}: the corpus' pictures in every accepted format, then three files that are not
  images."""
  root, _, _ = tiny_trained
  folder = tmp_path_factory.mktemp("formats")
  def corpus_image(i):
    return os.path.join(root, "images", f"im{i}.jpg")

  def pixels(i):
    return np.asarray(Image.open(corpus_image(i)).convert("RGB"))

  color_jpeg = open(corpus_image(1), "rb").read()
  contents = {
      "color.jpg": color_jpeg,
      # the corpus writes every 5th image in grayscale
      "gray.jpg": open(corpus_image(5), "rb").read(),
      "rgba.png": image_bytes.encode(
          np.dstack([pixels(2), np.full(pixels(2).shape[:2], 128, np.uint8)]), "PNG"),
      "animated.gif": image_bytes.animated_gif([pixels(3), np.full_like(pixels(3), 255)]),
      "picture.bmp": image_bytes.encode(pixels(4), "BMP"),
      "deep16.png": image_bytes.png16(pixels(6)[..., 0].astype(np.uint16) * 257),
      "text.jpg": b"not an image at all\n",
      "empty.jpg": b"",
      "truncated.jpg": color_jpeg[:len(color_jpeg) // 2],
  }
  paths = {}
  for name, data in contents.items():
    paths[name] = str(folder / name)
    with open(paths[name], "wb") as f:
      f.write(data)
  return paths


@pytest.fixture(scope="module")
def loaded(tiny_saved_model):
  return tf.saved_model.load(tiny_saved_model)


BOMB_SIDE = 6400  # one frame of 41 M pixels, just over export.MAX_IMAGE_PIXELS, in a few KB of GIF
assert BOMB_SIDE**2 > export.MAX_IMAGE_PIXELS


def test_gif_bombs_and_palette_bmps_are_invalid_through_serving_default(loaded, image_files):
  small = np.full((6, 10, 3), 128, np.uint8)
  refused = [image_bytes.gif_bomb(BOMB_SIDE), image_bytes.gif_with_second_frame(small, BOMB_SIDE),
             image_bytes.palette_bmp(small)]
  good = open(image_files["color.jpg"], "rb").read()
  out = loaded.signatures[signatures.SERVING](image_bytes=tf.constant([*refused, good]))
  assert out["valid"].numpy().tolist() == [False, False, False, True]


def expected_answers(result, paths):
  """What the in-memory inference model says about ``paths`` through the training input pipeline."""
  frame = pd.DataFrame({"path": list(paths), **{name: 0 for name in result.label_names}})
  return scoring.predict(result.inference_model, frame, result.label_names, fast_config())


def run(command):
  proc = subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO_ROOT,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_served_answers_equal_training_in_a_process_without_mlc_tf(tiny_trained, tiny_saved_model,
                                                                   image_files):
  _, workdir, result = tiny_trained
  names = [*VALID_FILES, *INVALID_FILES]
  served = json.loads(run([sys.executable, "-c", CONTRACT_SCRIPT, tiny_saved_model,
                           *[image_files[n] for n in names]]).strip().splitlines()[-1])
  assert not served["imported_mlc_tf"]
  batch = served["batch"]
  assert set(batch) == set(signatures.OUTPUTS)

  good = len(VALID_FILES)
  assert batch["valid"] == [True] * good + [False] * len(INVALID_FILES)
  expected = expected_answers(result, [image_files[n] for n in VALID_FILES])
  np.testing.assert_allclose(batch["probabilities"][:good], expected["probabilities"], atol=1e-5)
  np.testing.assert_array_equal(batch["decisions"][:good], expected["decisions"])
  for probabilities, decisions, labels in zip(batch["probabilities"], batch["decisions"],
                                              batch["labels"]):
    decided = [name for name, d in zip(result.label_names, decisions) if d]
    decided.sort(key=lambda name: -probabilities[result.label_names.index(name)])
    assert labels == decided + [""] * (len(result.label_names) - len(decided))
  assert batch["probabilities"][good:] == [[0.0] * 3] * len(INVALID_FILES)
  assert batch["decisions"][good:] == [[0] * 3] * len(INVALID_FILES)

  assert served["empty"] == {
      "probabilities": [0, 3], "decisions": [0, 3], "labels": [0, 3], "valid": [0]
  }
  meta = served["metadata"]
  assert meta["label_names"] == ["cat", "dog", "sun"] and meta["image_size"] == 16
  assert meta["max_image_pixels"] == export.MAX_IMAGE_PIXELS
  np.testing.assert_allclose(meta["thresholds"], result.thresholds, rtol=1e-6)
  assert json.loads(meta["config"]) == json.load(open(os.path.join(workdir, "config.json")))
  assets = json.load(open(os.path.join(tiny_saved_model, "assets.extra", "metadata.json")))
  assert assets["label_names"] == meta["label_names"] and assets["config"] == json.loads(
      meta["config"])
  assert assets["label_rules"] == [
      list(pair) for pair in inference.implications(result.inference_model)
  ]
  # what mlc-calibrate needs to rebuild the model around the export
  assert assets["prior_shift"] is None and assets["tagged_gate"] is None


def parse_saved_model_cli_show(text):
  """``saved_model_cli show --all`` -> {signature: {"inputs"|"outputs": {name: (dtype, shape)}}}."""
  found = {}
  for block in re.split(r"\nsignature_def\['", text)[1:]:
    name = block[:block.index("'")]
    entry = found.setdefault(name, {"inputs": {}, "outputs": {}})
    for kind, tensor, dtype, shape in re.findall(
        r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+"
        r"shape: (\([^)]*\)|unknown_rank)",
        block):
      entry[kind][tensor] = (dtype, shape)
  return found


def test_saved_model_cli_show_lists_the_documented_signatures(tiny_saved_model):
  shown = parse_saved_model_cli_show(
      run(["saved_model_cli", "show", "--dir", tiny_saved_model, "--all"]))
  assert shown[signatures.SERVING] == {
      "inputs": {"image_bytes": ("DT_STRING", "(-1)")},
      "outputs": {"probabilities": ("DT_FLOAT", "(-1, 3)"), "decisions": ("DT_INT32", "(-1, 3)"),
                  "labels": ("DT_STRING", "(-1, 3)"), "valid": ("DT_BOOL", "(-1)")}}
  assert shown[signatures.PIXELS] == {
      "inputs": {"pixels": ("DT_FLOAT", "(-1, -1, -1, 3)")},
      "outputs": {"probabilities": ("DT_FLOAT", "(-1, 3)"), "decisions": ("DT_INT32", "(-1, 3)"),
                  "labels": ("DT_STRING", "(-1, 3)")}}
  assert shown[signatures.METADATA] == {
      "inputs": {},
      "outputs": {"label_names": ("DT_STRING", "(3)"), "thresholds": ("DT_FLOAT", "(3)"),
                  "image_size": ("DT_INT32", "()"), "max_image_pixels": ("DT_INT64", "()"),
                  "config": ("DT_STRING", "()")}}


def test_saved_model_cli_run_answers(tiny_trained, tiny_saved_model, image_files, tmp_path):
  _, _, result = tiny_trained
  batch = str(tmp_path / "batch.npy")
  np.save(batch, np.array([open(image_files["color.jpg"], "rb").read(), b"junk"], dtype=object))
  text = run(["saved_model_cli", "run", "--dir", tiny_saved_model, "--tag_set", "serve",
              "--signature_def", "serving_default", "--inputs", f"image_bytes={batch}"])
  results = dict(re.findall(r"Result for output key (\w+):\n(.*?)(?=\nResult for|\Z)", text, re.S))
  assert set(results) == set(signatures.OUTPUTS)
  assert results["valid"].split() == ["[", "True", "False]"]
  expected = expected_answers(result, [image_files["color.jpg"]])["decisions"][0]
  assert results["decisions"].replace("[", " ").replace(
      "]", " ").split() == [str(d) for d in expected] + ["0"] * 3


def test_predict_pixels_resizes_like_training(loaded, image_files):
  serve, pixels_signature = loaded.signatures[signatures.SERVING], loaded.signatures[
      signatures.PIXELS]

  def from_pixels(pixels):
    return pixels_signature(
        pixels=tf.constant(np.asarray(pixels, np.float32)[None]))["probabilities"].numpy()[0]

  def from_bytes(name):
    return serve(
        image_bytes=tf.constant([open(image_files[name], "rb").read()]))["probabilities"].numpy()[0]

  png = np.asarray(Image.open(image_files["rgba.png"]).convert("RGB"))
  np.testing.assert_allclose(from_pixels(png), from_bytes("rgba.png"), atol=1e-5)
  first, second = image_bytes.gif_frames(open(image_files["animated.gif"], "rb").read())
  # GIF: the first frame
  np.testing.assert_allclose(from_pixels(first), from_bytes("animated.gif"), atol=1e-5)
  assert np.abs(from_pixels(second) - from_bytes("animated.gif")).max() > 1e-4
  # any H x W is resized inside
  big = np.asarray(Image.fromarray(png).resize((37, 53), Image.NEAREST), np.float32)
  assert pixels_signature(pixels=tf.constant(big[None]))["probabilities"].shape == (1, 3)
  assert pixels_signature(pixels=tf.zeros([0, 20, 30, 3]))["labels"].shape == (0, 3)
  # NaN or infinite pixels are refused, not answered with NaN probabilities; others are clipped
  for bad in (np.nan, np.inf, -np.inf):
    hostile = big.copy()
    hostile[5, 5, 1] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="pixels must be finite"):
      pixels_signature(pixels=tf.constant(hostile[None]))
  np.testing.assert_allclose(from_pixels(np.where(png > 128, 1e6, -1e6)),
                             from_pixels(np.where(png > 128, 255, 0)), atol=1e-6)


def test_an_export_removes_the_versions_of_killed_exports_but_never_one_being_written(
    tiny_trained, tmp_path):
  _, _, result = tiny_trained
  ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True)
  model_dir = tmp_path / "tiny"
  # its writer no longer runs
  killed = model_dir / f".staging-{int(ended.stdout)}-0123456789ab-version"
  live = model_dir / f".staging-{os.getpid()}-ba9876543210-version"
  for staged in (killed, live):
    (staged / "variables").mkdir(parents=True)
  assert export.export_saved_model(result.inference_model, base_dir=str(tmp_path),
                                   name="tiny").endswith("/1")
  assert not killed.exists() and live.is_dir()


def test_versions_increase_and_existing_ones_are_never_touched(tiny_trained, tmp_path):
  _, _, result = tiny_trained
  model_dir = tmp_path / "tiny"
  kept = ("1", "7", ".staging-crashed", "notes", "²")  # "²".isdigit(), yet no version
  for existing in kept:
    (model_dir / existing).mkdir(parents=True)
    (model_dir / existing / "marker").write_text(existing)
  path = export.export_saved_model(result.inference_model, base_dir=str(tmp_path), name="tiny")
  assert path == str(model_dir / "8") and os.path.isfile(os.path.join(path, "saved_model.pb"))
  assert sorted(os.listdir(model_dir)) == sorted([*kept, "8"])
  assert all((model_dir / d / "marker").read_text() == d for d in kept)


def test_export_refuses_a_model_it_would_mislabel(tiny_trained, tmp_path):
  _, _, result = tiny_trained
  with pytest.raises(ValueError, match="differ from the model"):
    export.export_saved_model(result.inference_model, base_dir=str(tmp_path), name="x",
                              label_names=["a", "b", "c"])
  with pytest.raises(ValueError, match="input size"):
    export.export_saved_model(result.inference_model, base_dir=str(tmp_path), name="x",
                              image_size=32)
  with pytest.raises(ValueError, match="DecisionThresholds"):
    # the bare network: no thresholds
    export.export_saved_model(result.model, base_dir=str(tmp_path), name="x")
  for pixels in (0, -5):  # it would refuse every photo
    with pytest.raises(ValueError, match=f"max_image_pixels={pixels}: .*refuse every photo"):
      export.export_saved_model(result.inference_model, base_dir=str(tmp_path), name="x",
                                max_image_pixels=pixels)
  assert not os.path.exists(tmp_path / "x")


def test_mlc_export_refuses_a_pixel_limit_below_one(tiny_trained, tmp_path):
  _, workdir, _ = tiny_trained
  proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.export", f"--workdir={workdir}",
                         f"--base_dir={tmp_path}", "--max_image_pixels=-5"], capture_output=True,
                        text=True, cwd=REPO_ROOT, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT})
  assert proc.returncode == 1 and "--max_image_pixels=-5" in proc.stderr, proc.stderr[-2000:]
  assert not os.listdir(tmp_path)


def test_mlc_export_writes_the_next_version_of_a_workdir(tiny_trained, tmp_path):
  _, workdir, result = tiny_trained
  base_dir = tmp_path / "models"
  # the name comes from the workdir's config: export.name
  (base_dir / "tiny" / "1").mkdir(parents=True)
  out = run_cli("export", f"--workdir={workdir}", f"--base_dir={base_dir}")
  assert out.strip().splitlines()[-1] == f"exported: {base_dir / 'tiny' / '2'}"
  reloaded = tf.saved_model.load(str(base_dir / "tiny" / "2"))
  np.testing.assert_allclose(reloaded.signatures["metadata"]()["thresholds"].numpy(),
                             result.thresholds, rtol=1e-6)
  # TF Serving's warm-up: each batch signature asked about photos of the workdir's corpus (its
  # data_audit.json names it), as a batch and alone; tests/test_serving.py replays them
  requests = warmup_requests(base_dir / "tiny" / "2")
  assert [(signature, len(rows)) for signature, _, rows in requests] == [
      ("serving_default", export.WARMUP_PHOTOS), ("serving_default", 1),
      ("predict_pixels", export.WARMUP_PHOTOS), ("predict_pixels", 1)]
  root, _, _ = tiny_trained
  corpus_files = {(pathlib.Path(root) / "images" / name).read_bytes()
                  for name in os.listdir(os.path.join(root, "images"))}
  assert set(requests[0][2]) <= corpus_files
  np.testing.assert_array_equal(
      requests[2][2][0], pipeline.decode_and_resize(tf.constant(requests[0][2][0]), 16).numpy())


def test_an_export_without_corpus_photos_warms_up_on_generated_ones(tiny_trained, tmp_path):
  _, _, result = tiny_trained
  requests = warmup_requests(
      export.export_saved_model(result.inference_model, base_dir=str(tmp_path), name="tiny"))
  assert [(signature, name, len(rows)) for signature, name, rows in requests] == [
      ("serving_default", "image_bytes", 2), ("serving_default", "image_bytes", 1),
      ("predict_pixels", "pixels", 2), ("predict_pixels", "pixels", 1)]
  assert [image_formats.format_of(photo) for photo in requests[0][2]] == ["jpeg", "png"]


def _resident_mb() -> float:
  with open("/proc/self/status") as f:
    return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmRSS from /proc")
def test_rejected_jpegs_do_not_hold_memory():
  # TF 2.21's float32 JPEG decode leaks its H x W x 3 scratch buffer whenever it rejects a JPEG:
  # these 300 rejections of a 512 x 512 JPEG would hold 300 x 768 KB = 225 MB if decode_and_resize
  # decoded JPEGs that way.
  pixels = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
  jpeg = image_bytes.encode(pixels, "JPEG")
  decode = tf.function(lambda batch: export.decode_batch(batch, 8),
                       input_signature=[tf.TensorSpec([None], tf.string)])
  truncated = tf.constant([jpeg[:len(jpeg) // 2]] * 10)
  assert not decode(truncated)[1].numpy().any()
  before = _resident_mb()
  for _ in range(30):
    decode(truncated)
  assert _resident_mb() - before < 40


def test_an_export_shows_its_own_lines_and_tensorflows_notes_only_with_verbosity(tiny_trained,
                                                                                 tmp_path):
  _, workdir, _ = tiny_trained
  for verbosity, shown in (([], False), (["--verbosity=1"], True)):
    proc = subprocess.run([sys.executable, "-m", "mlc_tf.cli.export", f"--workdir={workdir}",
                           f"--base_dir={tmp_path}", *verbosity], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300, env={**os.environ, "PYTHONPATH": REPO_ROOT})
    assert proc.returncode == 0 and "exported: " in proc.stdout, proc.stderr[-2000:]
    assert ("with unsupported characters" in proc.stderr) == shown, proc.stderr[-2000:]
