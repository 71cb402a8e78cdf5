"""A stand-in for tensorflow_model_server, for tests: TF Serving cannot be installed here.

Serves the latest version under ``--model_dir`` as ``--name`` over REST
(``POST /v1/models/<name>[/versions/<v>]:predict``) and gRPC
(``PredictionService/Predict``), converting requests and replies the way TF
Serving documents it: JSON ``{"b64": ...}`` values become DT_STRING elements,
row-format ``instances`` are stacked into one batch per input, replies are
row format (``{"predictions": [{output: value}, ...]}``); gRPC tensors go
through ``tf.make_ndarray`` / ``tf.make_tensor_proto``. It never imports
mlc_tf: what it serves has to stand on the SavedModel alone.

Like TF Serving (its "SavedModel warmup"), it replays the version's
``assets.extra/tf_serving_warmup_requests`` (a TFRecord of ``PredictionLog``s)
before it serves, and refuses to load a version whose file does not parse or
whose requests fail.

Prints one JSON line (ports, version, warm-up requests replayed, whether mlc_tf
got imported) when ready, then serves until killed.

  python tests/tf_serving_emulator.py --model_dir=saved_models/demo --name=demo
"""

import argparse
import base64
import concurrent.futures
import http.server
import json
import os
import re
import sys
import threading

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingFailure(Exception):
  def __init__(self, message, http_status=400, grpc_code=grpc.StatusCode.INVALID_ARGUMENT):
    super().__init__(message)
    self.http_status = http_status
    self.grpc_code = grpc_code


def not_found(message):
  return ServingFailure(message, 404, grpc.StatusCode.NOT_FOUND)


class Servable:
  """The latest version under a model directory, loaded with tf.saved_model.load."""

  def __init__(self, name, model_dir):
    versions = sorted(int(v) for v in os.listdir(model_dir) if v.isdigit())
    if not versions:
      raise SystemExit(f"no versions under {model_dir}")
    self.name, self.version = name, versions[-1]
    version_dir = os.path.join(model_dir, str(self.version))
    self.model = tf.saved_model.load(version_dir)
    self.warmup_requests = self.warm_up(os.path.join(version_dir, WARMUP_FILE))

  def warm_up(self, path):
    """Replays the warm-up file's predict requests; returns how many. A broken file fails the
    load."""
    if not os.path.exists(path):
      return 0
    count = 0
    try:
      for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
          raise ServingFailure(f"unsupported log type {log.WhichOneof('log_type')}")
        request = log.predict_log.request
        signature = self.signature(self.name, None, request.model_spec.signature_name)
        self.run(signature, {name: tf.constant(tf.make_ndarray(tensor), dtype=tensor.dtype)
                             for name, tensor in request.inputs.items()})
        count += 1
    except (ServingFailure, tf.errors.OpError, ValueError) as error:  # DecodeError is a ValueError
      raise SystemExit(f"warm-up of {path} failed after {count} request(s): {error}") from None
    if not count:
      raise SystemExit(f"warm-up file {path} holds no request")
    return count

  def signature(self, name, version, signature_name):
    if name != self.name or version not in (None, self.version):
      raise not_found(f"Servable not found for request: {name} version {version}")
    signature_name = signature_name or "serving_default"
    if signature_name not in self.model.signatures:
      raise ServingFailure(
          f"Serving signature name: \"{signature_name}\" not found in signature def")
    return self.model.signatures[signature_name]

  def run(self, signature, inputs):
    try:
      return {k: v.numpy() for k, v in signature(**inputs).items()}
    except (TypeError, ValueError, tf.errors.OpError) as error:
      raise ServingFailure(str(error)) from None


def json_value_to_numpy(value):
  """A JSON value -> numpy, with TF Serving's {"b64": ...} -> bytes rule applied at any depth."""
  def convert(v):
    if isinstance(v, dict):
      if set(v) != {"b64"}:
        raise ServingFailure(f"JSON object {list(v)} is not a {{\"b64\": ...}} value")
      return base64.b64decode(v["b64"], validate=True)
    if isinstance(v, list):
      return [convert(x) for x in v]
    return v
  converted = convert(value)
  return np.array(converted, dtype=object) if _holds_bytes(converted) else np.array(converted)


def _holds_bytes(value):
  if isinstance(value, list):
    return any(_holds_bytes(v) for v in value)
  return isinstance(value, (bytes, str))


def instances_to_inputs(instances, input_names):
  """Row format -> {input name: batch}: each instance is the single input's value, or an object of
  inputs."""
  if not isinstance(instances, list) or not instances:
    raise ServingFailure("'instances' must be a non-empty list")
  named = all(isinstance(x,
                         dict) and set(x) <= set(input_names) and "b64" not in x for x in instances)
  if not named:
    if len(input_names) != 1:
      raise ServingFailure("instances must be objects naming each input")
    instances = [{input_names[0]: x} for x in instances]
  return {name: json_value_to_numpy([x[name] for x in instances]) for name in input_names}


def outputs_to_predictions(outputs):
  """{output: [B, ...]} -> row format: one object per row (or the bare value for a single
  output)."""
  def jsonable(name, value):
    if isinstance(value, np.ndarray):
      return [jsonable(name, v) for v in value]
    if isinstance(value, bytes):
      return ({"b64": base64.b64encode(value).decode()} if name.endswith("_bytes")
              else value.decode())
    return value.item() if hasattr(value, "item") else value
  sizes = {v.shape[0] for v in outputs.values()}
  if len(sizes) != 1:
    raise ServingFailure("row format needs every output to share its batch size")
  rows = [{name: jsonable(name,
                          value[i]) for name, value in outputs.items()} for i in range(sizes.pop())]
  return [next(iter(row.values())) for row in rows] if len(outputs) == 1 else rows


def make_rest_handler(servable):
  route = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")

  class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
      pass

    def reply(self, status, body):
      data = json.dumps(body).encode()
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def do_POST(self):
      match = route.match(self.path)
      try:
        if not match:
          raise not_found(f"Malformed request: POST {self.path}")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        version = int(match.group(2)) if match.group(2) else None
        signature = servable.signature(match.group(1), version, body.get("signature_name"))
        input_names = list(signature.structured_input_signature[1])
        inputs = instances_to_inputs(body.get("instances"), input_names)
        inputs = {k: tf.constant(v, dtype=signature.structured_input_signature[1][k].dtype)
                  for k, v in inputs.items()}
        self.reply(200, {"predictions": outputs_to_predictions(servable.run(signature, inputs))})
      except ServingFailure as failure:
        self.reply(failure.http_status, {"error": str(failure)})

  return Handler


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
  def __init__(self, servable):
    self.servable = servable

  def Predict(self, request, context):
    try:
      version = request.model_spec.version.value if request.model_spec.HasField("version") else None
      signature = self.servable.signature(request.model_spec.name, version,
                                          request.model_spec.signature_name)
      inputs = {name: tf.constant(tf.make_ndarray(tensor), dtype=tensor.dtype)
                for name, tensor in request.inputs.items()}
      outputs = self.servable.run(signature, inputs)
    except ServingFailure as failure:
      context.abort(failure.grpc_code, str(failure))
    response = predict_pb2.PredictResponse()
    response.model_spec.name = self.servable.name
    response.model_spec.version.value = self.servable.version
    response.model_spec.signature_name = request.model_spec.signature_name or "serving_default"
    for name, value in outputs.items():
      response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    return response


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model_dir", required=True,
                      help="saved_models/<name>: holds integer version folders")
  parser.add_argument("--name", required=True)
  parser.add_argument("--rest_port", type=int, default=0)
  parser.add_argument("--grpc_port", type=int, default=0)
  args = parser.parse_args()
  servable = Servable(args.name, args.model_dir)

  rest = http.server.ThreadingHTTPServer(("127.0.0.1", args.rest_port), make_rest_handler(servable))
  threading.Thread(target=rest.serve_forever, daemon=True).start()
  grpc_server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionService(servable), grpc_server)
  grpc_port = grpc_server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
  grpc_server.start()
  print(json.dumps({"rest_port": rest.server_address[1], "grpc_port": grpc_port,
                    "version": servable.version, "warmup_requests": servable.warmup_requests,
                    "imported_mlc_tf": any(m == "mlc_tf" or m.startswith("mlc_tf.")
                                           for m in sys.modules)}),
        flush=True)
  grpc_server.wait_for_termination()


if __name__ == "__main__":
  main()
