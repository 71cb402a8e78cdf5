"""SavedModel export in TF Serving's versioned layout, preprocessing inside the graph.

``saved_models/<name>/<version>/`` gets a SavedModel whose signatures need
nothing from mlc_tf to run: the same ``decode_and_resize`` that training used
is traced into the graph, and label names, thresholds and label rules are
part of it (the inference model's ``decisions`` output already applies them).

Signatures (docs/serving.md shows them in use):

  serving_default(image_bytes string [B]) ->
      probabilities float32 [B, L], decisions int32 [B, L],
      labels string [B, L] (names of the decided labels, most probable first, padded with ""),
      valid bool [B] (false: not a decodable JPEG/PNG/GIF/BMP; its answers are zeros and "")
  predict_pixels(pixels float32 [B, H, W, 3] in [0, 255], any H x W) ->
      probabilities, decisions, labels as above (NaN or infinite pixels: an InvalidArgumentError;
      values outside [0, 255] clipped)
  metadata() ->
      label_names string [L], thresholds float32 [L], image_size int32, max_image_pixels int64,
      config string (the training config, JSON)

``assets.extra/metadata.json`` holds the same metadata for humans and tools
(TF Serving ignores that folder's other files), plus the label rules the
decisions obey and the prior shift the probabilities carry (null when none),
and the tagged gate (``layers.TaggedGate``: coefficients, bias, label_frequency and the stream's
estimated share of photos with no label; null when none):
with them ``inference_model_from_export`` rebuilds the inference model around
the export, so a deployment's export is recalibrated without its workdir (one
with a tagged gate excepted: its outputs cannot undo the gate).

``assets.extra/tf_serving_warmup_requests`` holds the requests TF Serving
replays when it loads the version, before it serves it (its "SavedModel
warmup"): ``serving_default`` and ``predict_pixels`` each asked about a few
photos of the training corpus as one batch and about one alone, so the first
clients do not pay for the lazy initialisation of the graph's kernels.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2

from mlc_tf import atomic_files
from mlc_tf.data import image_formats, pipeline
from mlc_tf.models import inference, layers
from mlc_tf.serving import models_config, signatures

MAX_IMAGE_PIXELS = image_formats.MAX_IMAGE_PIXELS
WARMUP_FILE = "tf_serving_warmup_requests"  # in assets.extra/, where TF Serving looks for it
WARMUP_PHOTOS = 8  # how many corpus photos the warm-up requests carry


def next_version(model_dir: str) -> int:
  """Returns 1 + the highest integer version directory under ``model_dir`` (1 when none)."""
  if not tf.io.gfile.isdir(model_dir):
    return 1
  versions = [
      int(name.rstrip("/"))
      for name in tf.io.gfile.listdir(model_dir)
      if models_config.is_version(name.rstrip("/"))
  ]
  return max(versions, default=0) + 1


def decode_batch(image_bytes: tf.Tensor, image_size: int,
                 max_image_pixels: int = MAX_IMAGE_PIXELS) -> tuple[tf.Tensor, tf.Tensor]:
  """Decodes images [B] into (float32 [B, S, S, 3] from ``decode_and_resize``, valid bool [B]).

  An element whose header is not a JPEG/PNG/GIF/BMP, or that
  ``decode_and_resize`` refuses (over ``max_image_pixels``, a palette BMP,
  truncated, corrupt), gets zeros and ``valid=False``; the others decode as in training. A decode
  error inside ``tf.map_fn`` would fail the whole batch, so the decoding runs
  in a tf.data pipeline whose ``ignore_errors`` drops the failing elements,
  and each decoded image carries its index back to its place in the batch.
  """
  count = tf.shape(image_bytes, out_type=tf.int64)[0]

  def decode(index, one_image):
    return index, pipeline.decode_and_resize(one_image, image_size, max_image_pixels)

  decoded = (tf.data.Dataset.from_tensor_slices((tf.range(count), image_bytes))
             .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
             .ignore_errors())
  # A sentinel at index ``count`` makes exactly one batch, even when nothing decoded.
  sentinel = tf.data.Dataset.from_tensors((count, tf.zeros([image_size, image_size, 3],
                                                           tf.float32)))
  indices, images = decoded.concatenate(sentinel).batch(count + 1).get_single_element()
  images = tf.scatter_nd(indices[:, None], images, tf.stack([count + 1, image_size, image_size,
                                                             3]))[:-1]
  valid = tf.scatter_nd(indices[:, None], tf.ones_like(indices, tf.int32),
                        tf.reshape(count + 1, [1]))[:-1] > 0
  return images, valid


def predicted_label_names(probabilities: tf.Tensor, decisions: tf.Tensor,
                          label_names: tf.Tensor) -> tf.Tensor:
  """Returns the [B, L] names of the labels decided 1, most probable first, padded with "".

  Each row has L columns.
  """
  score = tf.where(decisions > 0, probabilities, -1.0)
  order = tf.argsort(score, axis=-1, direction="DESCENDING", stable=True)
  chosen = tf.gather(decisions, order, batch_dims=1) > 0
  return tf.where(chosen, tf.gather(label_names, order), "")


def signature_functions(inference_model: keras.Model, config_json: str = "{}",
                        max_image_pixels: int = MAX_IMAGE_PIXELS) -> dict:
  """Returns the exported signatures as tf.functions, by name (``signatures``).

  They are what a SavedModel serves, in memory.

  ``export_saved_model`` writes exactly these; a caller holding a model.keras
  can ask ``serving_default`` the same question TF Serving would be asked.
  """
  metadata = export_metadata(inference_model, config_json, max_image_pixels)
  num_labels, model_size = len(metadata["label_names"]), metadata["image_size"]
  label_tensor = tf.constant(metadata["label_names"], tf.string)

  def answer(images):
    def run_network():
      outputs = inference_model(images, training=False)
      return outputs["probabilities"], outputs["decisions"]

    def no_rows():
      return tf.zeros([0, num_labels], tf.float32), tf.zeros([0, num_labels], tf.int32)

    # An empty batch never reaches the network: oneDNN's batch norm rejects 0-row inputs on some
    # CPUs (AVX-512/AMX hosts: "Incompatible shapes: [C] vs. [0,H,W,C]").
    return tf.cond(tf.shape(images)[0] > 0, run_network, no_rows)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.IMAGE_BYTES)])
  def serve_bytes(image_bytes):
    images, valid = decode_batch(image_bytes, model_size, max_image_pixels)
    probabilities, decisions = answer(images)
    probabilities = tf.where(valid[:, None], probabilities, 0.0)
    decisions = tf.where(valid[:, None], decisions, 0)
    return {"probabilities": probabilities, "decisions": decisions,
            "labels": predicted_label_names(probabilities, decisions, label_tensor), "valid": valid}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name=signatures.PIXEL_INPUT)])
  def serve_pixels(pixels):
    # Before the resize, which would spread a NaN or an infinity over its neighbours: those are
    # refused (a NaN answer would decide nothing, silently), values outside [0, 255] clipped.
    pixels = tf.debugging.check_numerics(
        pixels, "predict_pixels: pixels must be finite numbers in [0, 255] (a NaN or infinity "
        "was given)")
    pixels = tf.clip_by_value(pixels, 0.0, 255.0)
    probabilities, decisions = answer(pipeline.resize(pixels, model_size))
    return {"probabilities": probabilities, "decisions": decisions,
            "labels": predicted_label_names(probabilities, decisions, label_tensor)}

  @tf.function(input_signature=[])
  def metadata_signature():
    return {
        "label_names": label_tensor,
        "thresholds": tf.constant(metadata["thresholds"], tf.float32),
        "image_size": tf.constant(model_size, tf.int32),
        "max_image_pixels": tf.constant(max_image_pixels, tf.int64),
        "config": tf.constant(config_json)
    }

  return {
      signatures.SERVING: serve_bytes,
      signatures.PIXELS: serve_pixels,
      signatures.METADATA: metadata_signature
  }


def export_metadata(inference_model: keras.Model, config_json: str, max_image_pixels: int) -> dict:
  """Returns what the metadata signature answers and assets.extra/metadata.json holds.

  It is read from the model; the LiteRT and ONNX files (``portable``) carry it too.
  """
  decisions_layer = inference.decision_layer(inference_model)
  shift, gate = inference.prior_shift(inference_model), inference.tagged_gate(inference_model)
  return {
      "label_names":
          list(decisions_layer.label_names),
      "thresholds":
          np.asarray(decisions_layer.thresholds.numpy(), np.float32).tolist(),
      "image_size":
          int(inference_model.input_shape[1]),
      "max_image_pixels":
          max_image_pixels,
      "label_rules": [list(pair) for pair in inference.implications(inference_model)],
      "prior_shift":
          shift and {
              "train_prior": shift.train_prior,
              "target_prior": shift.target_prior
          },
      "tagged_gate":
          gate and {
              "coefficients": gate.coefficients,
              "bias": gate.bias,
              "label_frequency": gate.label_frequency,
              "no_label_share": gate.no_label_share
          },
      "config":
          json.loads(config_json)
  }


def inference_model_from_export(export_dir: str) -> tuple[keras.Model, dict]:
  """Returns an inference model that answers as the SavedModel at ``export_dir`` does.

  It comes with the export's metadata: (model, metadata).

  The export's network is wrapped as it is (``keras.layers.TFSMLayer`` on its
  ``predict_pixels`` signature); the prior shift it carries is undone inside
  the nested network, so ``inference.network`` gives the probabilities as
  learnt, and its thresholds, label rules and prior shift are rebuilt from
  ``assets.extra/metadata.json``. What ``inference.build`` wraps around it
  is exported like any model.
  """
  metadata_path = os.path.join(export_dir, "assets.extra", "metadata.json")
  if not tf.io.gfile.exists(metadata_path):
    raise FileNotFoundError(
        f"{export_dir} has no assets.extra/metadata.json: not a model mlc_tf exported")
  with tf.io.gfile.GFile(metadata_path) as f:
    metadata = json.load(f)
  if "label_rules" not in metadata or "prior_shift" not in metadata:
    raise ValueError(
        f"{export_dir} was exported before mlc_tf recorded the label rules and prior shift it "
        "carries: calibrate the training workdir (or its model.keras) it came from")
  if metadata.get("tagged_gate"):
    raise ValueError(
        f"{export_dir} multiplies its probabilities by P(tagged | photo) (a TaggedGate), which its "
        "outputs cannot undo: calibrate the training workdir (or its model.keras) it came from")
  names, size, shift = metadata["label_names"], metadata["image_size"], metadata["prior_shift"]
  image = keras.Input((size, size, 3), name="image")
  probabilities = keras.layers.TFSMLayer(export_dir, call_endpoint=signatures.PIXELS,
                                         name="export")(image)["probabilities"]
  if shift:  # the same shift with the priors swapped is its exact inverse
    probabilities = layers.PriorShift(names, shift["target_prior"], shift["train_prior"],
                                      name="undo_prior_shift")(probabilities)
  network = keras.Model(image, probabilities, name="exported_network")
  outer = keras.Input((size, size, 3), name="image")
  nested = keras.Model(outer, network(outer),
                       name="exported")  # one layer to ``build``: its shift stays inside
  model = inference.build(nested,
                          names,
                          np.asarray(metadata["thresholds"],
                                     np.float32), [tuple(pair) for pair in metadata["label_rules"]],
                          priors=shift and
                          (np.asarray(shift["train_prior"]), np.asarray(shift["target_prior"])))
  return model, metadata


def export_saved_model(inference_model: keras.Model,
                       *,
                       base_dir: str,
                       name: str,
                       config_json: str = "{}",
                       label_names: list[str] | None = None,
                       image_size: int | None = None,
                       max_image_pixels: int = MAX_IMAGE_PIXELS,
                       extra_assets: dict[str, str] | None = None,
                       warmup_photos: Sequence[bytes] = ()) -> str:
  """Writes ``inference_model`` as ``<base_dir>/<name>/<next version>/`` and returns that path.

  Label names, thresholds and the input size are read from the model;
  ``label_names`` and ``image_size``, when given, must agree with it (a guard
  against exporting a model under the wrong names). ``config_json`` (the
  training config) travels in the metadata; ``extra_assets`` (file name ->
  text, e.g. a calibration report) go next to it in ``assets.extra/``, and so do the
  warm-up requests, made of ``warmup_photos`` (encoded images of the training corpus,
  ``corpus.sample_images``); without them, of two generated pictures (``generated_photos``).

  The version directory appears atomically (written aside, then renamed), so
  TF Serving never sees a half-written model, and an existing version is
  never overwritten.

  Args:
    inference_model: the model to export.
    base_dir: the directory of the exported models.
    name: the model's name, a directory under ``base_dir``.
    config_json: the training config, kept in the metadata.
    label_names: the expected label names; None: not checked.
    image_size: the expected input size; None: not checked.
    max_image_pixels: the largest image (in pixels) the signatures decode.
    extra_assets: file name -> text, written to ``assets.extra/``.
    warmup_photos: encoded photos the warm-up requests carry; none: generated ones.

  Returns:
    The new version directory.

  Raises:
    ValueError: ``label_names`` or ``image_size`` disagree with the model, or ``max_image_pixels``
      is below 1 (an export that refuses every photo).
  """
  if max_image_pixels < 1:
    raise ValueError(f"max_image_pixels={max_image_pixels}: an export would refuse every photo; "
                     "give a positive pixel count")
  metadata = export_metadata(inference_model, config_json, max_image_pixels)
  if label_names is not None and list(label_names) != metadata["label_names"]:
    raise ValueError(
        f"label_names {list(label_names)} differ from the model's {metadata['label_names']}")
  if image_size is not None and image_size != metadata["image_size"]:
    raise ValueError(
        f"image_size {image_size} differs from the model's input size {metadata['image_size']}")
  archive = keras.export.ExportArchive()
  archive.track(inference_model)
  for signature_name, function in signature_functions(inference_model, config_json,
                                                      max_image_pixels).items():
    archive.add_endpoint(signature_name, function)
  model_dir = os.path.join(base_dir, name)
  os.makedirs(model_dir, exist_ok=True)
  atomic_files.remove_abandoned(model_dir)  # versions of exports killed mid-write
  # Staged as "version", not an integer: TF Serving ignores it.
  with atomic_files.staged_beside(os.path.join(model_dir, "version")) as staged:
    archive.write_out(staged, verbose=False)
    os.makedirs(os.path.join(staged, "assets.extra"))
    with open(os.path.join(staged, "assets.extra", "metadata.json"), "w") as f:
      json.dump(metadata, f, indent=2)
    for file_name, text in (extra_assets or {}).items():
      with open(os.path.join(staged, "assets.extra", file_name), "w") as f:
        f.write(text)
    if not warmup_photos:
      logging.warning("%s: no corpus photos at hand; the TF Serving warm-up requests of its new "
                      "version carry generated pictures", model_dir)
    with tf.io.TFRecordWriter(os.path.join(staged, "assets.extra", WARMUP_FILE)) as writer:
      for record in warmup_requests(warmup_photos or generated_photos(metadata["image_size"]),
                                    metadata["image_size"], max_image_pixels):
        writer.write(record)
    return _publish_as_next_version(staged, model_dir)


def warmup_requests(photos: Sequence[bytes], image_size: int,
                    max_image_pixels: int = MAX_IMAGE_PIXELS) -> list[bytes]:
  """Returns TF Serving's warm-up records for ``photos``: serialized ``PredictionLog``s.

  ``serving_default`` is asked with the photos' bytes, ``predict_pixels`` with their pixels
  (``decode_and_resize``), each once with all of them as one batch and once with the first alone:
  the batch sizes a server meets first. ``metadata`` takes no batch and reads constants: nothing
  to warm up.
  """
  pixels = decoded_pixels(photos, image_size, max_image_pixels)
  records = []
  for signature_name, input_name, batch in (
      (signatures.SERVING, signatures.IMAGE_BYTES, np.array(list(photos), dtype=object)),
      (signatures.PIXELS, signatures.PIXEL_INPUT, pixels)):
    for rows in (batch, batch[:1]):
      log = prediction_log_pb2.PredictionLog()
      log.predict_log.request.model_spec.signature_name = signature_name
      log.predict_log.request.inputs[input_name].CopyFrom(tf.make_tensor_proto(rows))
      records.append(log.SerializeToString())
  return records


def decoded_pixels(photos: Sequence[bytes], image_size: int,
                   max_image_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
  """Returns float32 [N, S, S, 3]: encoded ``photos`` through ``decode_and_resize`` (whole
  intensities in [0, 255])."""
  return np.stack([
      pipeline.decode_and_resize(tf.constant(photo), image_size, max_image_pixels).numpy()
      for photo in photos
  ])


def generated_photos(image_size: int) -> list[bytes]:
  """Returns a JPEG and a PNG of a colour gradient at twice ``image_size``: the warm-up photos of
  an export whose training corpus is not at hand (both decoders and the resize run)."""
  ramp = np.linspace(0, 255, 2 * image_size, dtype=np.float32)
  red, green = np.meshgrid(ramp, ramp[::-1])
  pixels = np.dstack([red, green, np.full_like(red, 128)]).astype(np.uint8)
  return [tf.io.encode_jpeg(pixels).numpy(), tf.io.encode_png(pixels).numpy()]


def _publish_as_next_version(staged: str, model_dir: str) -> str:
  """Renames the finished ``staged`` directory to ``model_dir/<next version>``.

  It never renames onto an existing version.
  """
  while True:
    version_dir = os.path.join(model_dir, str(next_version(model_dir)))
    try:
      os.rename(staged, version_dir)  # fails if it exists: never overwrite
      return version_dir
    except OSError:
      if not os.path.isdir(version_dir):
        raise
