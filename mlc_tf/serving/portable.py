"""LiteRT (TF Lite) and ONNX exports: the serving contract on decoded pixels, for runtimes without
TensorFlow (phones, browsers, ONNX Runtime on CPU servers).

One file each, converted by the maintained paths: Keras' own ``Model.export(format="litert")``
(``tf.lite.TFLiteConverter``) and ``Model.export(format="onnx")`` (tf2onnx). The converted model is
the inference model behind a uint8 input:

  pixels uint8 [B, S, S, 3] (decoded and resized outside, by ``decode_and_resize``) ->
      probabilities float32 [B, L], decisions int32 [B, L] (per-label thresholds and label rules
      inside the graph)

and the file carries ``export.export_metadata`` (label names, thresholds, label rules, input size,
...) plus its format and precision, as JSON under the key ``mlc_tf``: in the LiteRT flatbuffer's
``metadata`` table (beside the converter's own entries), in the ONNX model's ``metadata_props``.
A file without it is not ours: ``load`` refuses it. Label names are not an output (string tensors
are not builtin LiteRT ops); a runtime maps the decision columns through the metadata.

LiteRT precisions: ``float32``; ``float16`` (weights stored as float16); ``dynamic_int8`` (int8
weights, activations quantized on the fly); ``int8`` (the convolutional body on integer-only
kernels, weights and activations int8, ranges calibrated on representative photos of the training
corpus; the head, from the pooled features to the decisions, in float32). Only builtin
ops are allowed (no Flex delegate): an op the runtime lacks fails the export with its name.
Files are written aside and renamed into place, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from mlc_tf import atomic_files
from mlc_tf.serving import export, signatures

FORMATS = {"litert": ".tflite", "onnx": ".onnx"}  # format -> file suffix
PRECISIONS = ("float32", "float16", "dynamic_int8", "int8")  # LiteRT's; ONNX is float32
METADATA_KEY = "mlc_tf"
OUTPUTS = ("probabilities", "decisions")


class UnsupportedOps(ValueError):
  """The target runtime has no kernel for some ops of the model; ``ops`` names them."""

  def __init__(self, target: str, ops: Sequence[str], detail: str = ""):
    self.ops = list(ops)
    super().__init__(f"{target} has no builtin op for {', '.join(self.ops) or 'some op'} "
                     f"of this model; nothing was written{detail}")


def pixel_model(inference_model: keras.Model) -> keras.Model:
  """Returns ``inference_model`` behind a uint8 pixel input: pixels -> probabilities,
  decisions."""
  size = int(inference_model.input_shape[1])
  pixels = keras.Input((size, size, 3), dtype="uint8", name=signatures.PIXEL_INPUT)
  outputs = inference_model(keras.ops.cast(pixels, "float32"))
  return keras.Model(pixels, {name: outputs[name] for name in OUTPUTS},
                     name=f"{inference_model.name}_pixels")


def decoded_pixels(photos: Sequence[bytes], image_size: int,
                   max_image_pixels: int = export.MAX_IMAGE_PIXELS) -> np.ndarray:
  """Returns uint8 [N, S, S, 3]: ``export.decoded_pixels``, whose whole intensities the cast
  keeps."""
  return export.decoded_pixels(photos, image_size, max_image_pixels).astype(np.uint8)


def export_file(inference_model: keras.Model, path: str, file_format: str,
                precision: str = "float32", representative_photos: Sequence[bytes] = (),
                config_json: str = "{}",
                max_image_pixels: int = export.MAX_IMAGE_PIXELS) -> str:
  """Writes ``inference_model`` to ``path`` as a LiteRT or ONNX file (``file_format``); returns
  ``path``.

  Args:
    inference_model: the model to export.
    path: the file to write, ending in ``.tflite`` (litert) or ``.onnx`` (onnx); an existing one
      is replaced only once the new one is complete.
    file_format: ``litert`` or ``onnx``.
    precision: one of ``PRECISIONS`` (LiteRT); ONNX takes ``float32`` only.
    representative_photos: encoded photos of the training corpus; ``int8`` needs them.
    config_json: the training config, kept in the metadata.
    max_image_pixels: what the metadata tells the decoding outside the model to refuse.

  Raises:
    ValueError: a wrong suffix, format or precision, or ``int8`` without photos.
    UnsupportedOps: the runtime lacks ops of the model (named).
  """
  if file_format not in FORMATS:
    raise ValueError(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}")
  if not path.endswith(FORMATS[file_format]):
    raise ValueError(f"a {file_format} file's name ends with {FORMATS[file_format]}: {path}")
  if precision not in (PRECISIONS if file_format == "litert" else ("float32",)):
    raise ValueError(f"precision {precision!r} is not one {file_format} exports "
                     f"({', '.join(PRECISIONS) if file_format == 'litert' else 'float32'})")
  metadata = {**export.export_metadata(inference_model, config_json, max_image_pixels),
              "format": file_format, "precision": precision}
  model = pixel_model(inference_model)
  if file_format == "litert":
    write = _litert_writer(model, precision, metadata, representative_photos)
  else:
    write = _onnx_writer(model, metadata)
  return atomic_files.write_aside(path, write)


def _litert_writer(model: keras.Model, precision: str, metadata: dict,
                   representative_photos: Sequence[bytes]):
  builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
  if precision == "float32":
    options = {"target_spec": builtins}
  elif precision == "float16":
    options = {"optimizations": [tf.lite.Optimize.DEFAULT],
               "target_spec": {**builtins, "supported_types": [tf.float16]}}
  elif precision == "dynamic_int8":
    options = {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": builtins}
  else:
    if not representative_photos:
      raise ValueError("int8 needs representative photos of the training corpus to calibrate "
                       "its activation ranges on")
    pixels = decoded_pixels(representative_photos, metadata["image_size"],
                            metadata["max_image_pixels"])

    def representative_dataset():
      for one in pixels:
        yield {signatures.PIXEL_INPUT: one[None]}

  def write(staged: str) -> None:
    try:
      if precision == "int8":
        data = _int8_with_float_head(model, representative_dataset)
      else:
        model.export(staged, format="litert", verbose=False, **options)
        with open(staged, "rb") as f:
          data = f.read()
    except Exception as error:  # the converter's ConverterError, and tf.errors from calibration
      ops = _ops_named(str(error))
      if ops is None:
        raise
      raise UnsupportedOps(f"LiteRT ({precision})", ops) from None
    data = _with_litert_metadata(data, json.dumps(metadata).encode())
    with open(staged, "wb") as f:
      f.write(data)
  return write


def _int8_with_float_head(model: keras.Model, representative_dataset) -> bytes:
  """Returns ``model`` as a LiteRT flatbuffer whose convolutional body runs integer-only kernels
  and whose head (every op from the pooled features on: the Dense layer, its sigmoid, prior
  shift, tagged gate, thresholds, label rules) stays float32.

  Quantized too, the head's probabilities are multiples of 1/256 (an int8 sigmoid's fixed output
  scale) and the thresholds, some near 0.04, sit among those steps: on best.py's export 97 % of
  decisions stayed identical, against 99.5 % with the head in float. Selective quantization
  (``tf.lite.experimental.QuantizationDebugger``): calibrate, then quantize with the head's nodes
  denylisted; their calibrated ranges are dropped first, as the quantizer otherwise still rounds
  a denylisted sigmoid's output to its fixed int8 scale.
  """
  from tensorflow.lite.tools import flatbuffer_utils
  with tempfile.TemporaryDirectory() as saved_model:  # Keras' own path to the converter
    archive = keras.export.ExportArchive()
    archive.track(model)
    size = int(model.input_shape[1])
    archive.add_endpoint("serve", lambda pixels: model(pixels, training=False), input_signature=[
        tf.TensorSpec((None, size, size, 3), tf.uint8, name=signatures.PIXEL_INPUT)])
    archive.write_out(saved_model, verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter)
  calibrated = flatbuffer_utils.convert_bytearray_to_object(bytearray(debugger.calibrated_model))
  graph, head = calibrated.subgraphs[0], []
  for op in graph.operators:  # [B, n] outputs: the head; the body's activations are [B, H, W, C]
    outputs = [graph.tensors[i] for i in op.outputs]
    if all(len(tensor.shape) <= 2 for tensor in outputs):
      for tensor in outputs:
        tensor.quantization = None
        head.append(tensor.name.decode())
  debugger.calibrated_model = bytes(flatbuffer_utils.convert_object_to_bytearray(calibrated))
  debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=head)
  return debugger.get_nondebug_quantized_model()


# "Custom ops: A, B" (an op no builtin implements), "'tf.A' op is neither a custom op nor a flex
# op", and int8's "'tfl.A' op is ... not supported ... quantiz..." name the ops.
_CUSTOM_OPS = re.compile(r"Custom ops: ([^\n]+)")
_NAMED_OP = re.compile(r"'(?:tf|tfl)\.(\w+)' op (?:is neither a custom op nor a flex op|"
                       r"[^\n]*quantiz)")


def _ops_named(message: str) -> list[str] | None:
  """The op names a converter error gives, or None when it is not about unsupported ops."""
  found = _CUSTOM_OPS.search(message)
  if found:
    return [name.strip() for name in found.group(1).split(",") if name.strip()]
  named = sorted(set(_NAMED_OP.findall(message)))
  return named or None


def _with_litert_metadata(model_bytes: bytes, value: bytes) -> bytes:
  """Returns the flatbuffer with a ``metadata`` entry ``mlc_tf`` holding ``value``."""
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(value, np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name, entry.buffer = METADATA_KEY, len(model.buffers) - 1
  model.metadata = [*(model.metadata or []), entry]
  return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _onnx_writer(model: keras.Model, metadata: dict):
  import onnx
  import onnxruntime

  def write(staged: str) -> None:
    size = int(model.input_shape[1])
    model(np.zeros((1, size, size, 3), np.uint8))  # Keras' ONNX export refuses a model never called
    model.export(staged, format="onnx", verbose=False)
    proto = onnx.load(staged)
    # tf2onnx logs an op it cannot convert and leaves it in the graph as it was.
    missing = sorted({node.op_type for node in proto.graph.node
                      if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)})
    if missing:
      raise UnsupportedOps("ONNX", missing, " (tf2onnx left them unconverted)")
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata))
    onnx.save(proto, staged)
    try:  # what ONNX Runtime cannot run either fails here
      onnxruntime.InferenceSession(staged, providers=["CPUExecutionProvider"])
    except Exception as error:
      raise ValueError(f"ONNX Runtime cannot load the converted model: {error}") from None
  return write


class Runtime:
  """A LiteRT or ONNX file of ours, loaded in its runtime: ``metadata`` and ``__call__``."""

  def __init__(self, path: str):
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS.values():
      raise ValueError(f"{path}: not a .tflite or .onnx file")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no model file at {path}")
    self.path = path
    self.metadata = (_litert_metadata if suffix == ".tflite" else _onnx_metadata)(path)
    if self.metadata is None:
      raise ValueError(
          f"{path} carries no {METADATA_KEY!r} metadata (label names, thresholds, input size): "
          "not a model mlc-export wrote, so its columns cannot be named; export one with "
          "mlc-export --format=litert|onnx")
    self.label_names = list(self.metadata["label_names"])
    self.image_size = int(self.metadata["image_size"])
    if suffix == ".tflite":
      from ai_edge_litert.interpreter import Interpreter
      # all cores, as TensorFlow and ONNX Runtime use (LiteRT's default is one thread)
      self._run = Interpreter(model_path=path, num_threads=os.cpu_count()).get_signature_runner()
    else:
      import onnxruntime
      session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
      self._run = lambda **inputs: dict(zip(OUTPUTS, session.run(list(OUTPUTS), inputs)))

  def __call__(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 pixels [B, S, S, 3] -> (probabilities float32 [B, L], decisions int32 [B, L])."""
    outputs = self._run(**{signatures.PIXEL_INPUT: np.asarray(pixels, np.uint8)})
    return np.asarray(outputs["probabilities"]), np.asarray(outputs["decisions"])


def _litert_metadata(path: str) -> dict | None:
  from tensorflow.lite.python import schema_py_generated as schema
  with open(path, "rb") as f:
    data = bytearray(f.read())
  try:
    if not schema.Model.ModelBufferHasIdentifier(data, 0):  # "TFL3" at bytes 4-8
      raise ValueError
    model = schema.Model.GetRootAs(data, 0)
    entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
               for i in range(model.MetadataLength())}
  except Exception:  # flatbuffers reads garbage as out-of-range offsets
    raise ValueError(f"{path} is not a LiteRT (TF Lite) flatbuffer") from None
  if METADATA_KEY not in entries:
    return None
  return json.loads(model.Buffers(entries[METADATA_KEY]).DataAsNumpy().tobytes())


def _onnx_metadata(path: str) -> dict | None:
  import onnx
  try:
    proto = onnx.load(path, load_external_data=False)
  except Exception as error:
    raise ValueError(f"{path} is not an ONNX model: {error}") from None
  props = {prop.key: prop.value for prop in proto.metadata_props}
  return json.loads(props[METADATA_KEY]) if METADATA_KEY in props else None
