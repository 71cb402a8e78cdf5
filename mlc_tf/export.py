"""SavedModel export in TF Serving's versioned layout, preprocessing inside the graph.

``saved_models/<name>/<version>/`` gets a SavedModel whose signatures need
nothing from mlc_tf to run: the same ``decode_and_resize`` that training used
is traced into the graph, and label names and thresholds are constants of it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mlc_tf.data import pipeline


def next_version(model_dir: str) -> int:
  """1 + the highest integer version directory under ``model_dir`` (1 when there is none)."""
  if not tf.io.gfile.isdir(model_dir):
    return 1
  versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir) if name.rstrip("/").isdigit()]
  return max(versions, default=0) + 1


def export_saved_model(inference_model: keras.Model, *, label_names: list[str], image_size: int,
                       base_dir: str, name: str, config_json: str = "{}") -> str:
  """Writes ``inference_model`` as ``<base_dir>/<name>/<next version>/`` and returns that path.

  The version directory appears atomically (written aside, then renamed), so
  TF Serving never sees a half-written model, and an existing version is
  never overwritten.

  Signatures:
    serving_default(image_bytes: string [B]) -> probabilities float32 [B, L], decisions int32 [B, L]
    metadata() -> label_names string [L], thresholds float32 [L], image_size int32, config string
  """
  thresholds = inference_model.get_layer("decisions").thresholds.numpy()
  label_tensor = tf.constant(label_names, tf.string)
  threshold_tensor = tf.constant(np.asarray(thresholds, np.float32))

  archive = keras.export.ExportArchive()
  archive.track(inference_model)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def serve_bytes(image_bytes):
    images = tf.map_fn(lambda b: pipeline.decode_and_resize(b, image_size), image_bytes,
                       fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
    outputs = inference_model(images, training=False)
    return {"probabilities": outputs["probabilities"], "decisions": outputs["decisions"]}

  @tf.function(input_signature=[])
  def metadata():
    return {"label_names": label_tensor, "thresholds": threshold_tensor,
            "image_size": tf.constant(image_size, tf.int32), "config": tf.constant(config_json)}

  archive.add_endpoint("serving_default", serve_bytes)
  archive.add_endpoint("metadata", metadata)

  model_dir = os.path.join(base_dir, name)
  os.makedirs(model_dir, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".staging-", dir=model_dir)  # not an integer: TF Serving ignores it
  try:
    archive.write_out(os.path.join(staging, "model"), verbose=False)
    with open(os.path.join(staging, "model", "labels.json"), "w") as f:  # for humans; signatures hold the same
      json.dump({"label_names": list(label_names), "thresholds": [float(t) for t in thresholds],
                 "image_size": image_size}, f, indent=2)
    while True:
      version_dir = os.path.join(model_dir, str(next_version(model_dir)))
      try:
        os.rename(os.path.join(staging, "model"), version_dir)  # fails if it exists: never overwrite
        return version_dir
      except OSError:
        if not os.path.isdir(version_dir):
          raise
  finally:
    shutil.rmtree(staging, ignore_errors=True)
