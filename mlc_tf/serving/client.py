"""Client for a model exported by ``mlc_tf.serving.export`` and served by TF Serving.

REST: ``POST <server>/v1/models/<name>[/versions/<v>]:predict`` with
``{"instances": [{"b64": ...}, ...]}`` (TF Serving decodes each ``b64`` into
the string tensor ``image_bytes``). gRPC: a tensorflow-serving-api
``PredictRequest`` to ``PredictionService/Predict``. Both ask the
``serving_default`` signature and read the same outputs back.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import urllib.error
import urllib.request
from typing import Sequence

import numpy as np

from mlc_tf.serving import signatures

GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class ServingError(RuntimeError):
  """The server refused or failed a request; the message is the server's."""


@dataclasses.dataclass(frozen=True)
class Answer:
  """What the model says about one image."""

  valid: bool                 # False: not a decodable JPEG/PNG/GIF/BMP (the rest is zeros)
  labels: list[str]           # the decided labels, most probable first
  probabilities: list[float]  # one per label, in the model's label order
  decisions: list[int]        # 0/1 per label, thresholds and label rules applied


def rest_url(server: str, model_name: str, version: int | None = None) -> str:
  """Returns the REST predict URL, ``<server>/v1/models/<name>[/versions/<version>]:predict``."""
  path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version is not None else "")
  return f"{server.rstrip('/')}{path}:predict"


def rest_request(images: Sequence[bytes], signature_name: str = signatures.SERVING) -> dict:
  """Returns the JSON body of a REST predict call: row format, one ``{"b64": ...}`` per image."""
  return {"signature_name": signature_name,
          "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images]}


def parse_rest_response(body: dict) -> list[Answer]:
  """Parses TF Serving's row-format reply (``{"predictions": [{output: value, ...}, ...]}``).

  Returns the answers.

  Raises:
    ServingError: an error reply, or one that is not the row format of this model's outputs.
  """
  if not isinstance(body, dict):
    raise ServingError(f"the reply is not a JSON object: {str(body)[:200]}")
  if "error" in body:
    raise ServingError(body["error"])
  try:
    return [Answer(valid=bool(row["valid"]), labels=[label for label in row["labels"] if label],
                   probabilities=[float(p) for p in row["probabilities"]],
                   decisions=[int(d) for d in row["decisions"]])
            for row in body["predictions"]]
  except (KeyError, TypeError, ValueError) as error:
    raise ServingError(f"the reply is not this model's row format ({error!r}): "
                       f"{json.dumps(body)[:200]}") from None


def _one_answer_per_image(answers: list[Answer], images: Sequence[bytes],
                          where: str) -> list[Answer]:
  """``answers``, refused when they are not one per image (a photo would be lost silently)."""
  if len(answers) != len(images):
    raise ServingError(f"{where} answered {len(answers)} photo(s) for the {len(images)} sent")
  return answers


def predict_rest(server: str, model_name: str, images: Sequence[bytes], *,
                 version: int | None = None, timeout_s: float = 30.0) -> list[Answer]:
  """Asks the TF Serving REST endpoint ``server`` for answers for ``images``.

  Args:
    server: the endpoint, e.g. http://localhost:8501.
    model_name: the served model's name.
    images: encoded images.
    version: the model version to ask; None: the server's default.
    timeout_s: seconds to wait for the reply.

  Returns:
    One answer per image, in order.

  Raises:
    ServingError: the server answered with an error, a reply that is not JSON in the row format,
      or not one answer per image.
  """
  if not images:
    return []
  request = urllib.request.Request(rest_url(server, model_name, version),
                                   data=json.dumps(rest_request(images)).encode(),
                                   headers={"Content-Type": "application/json"}, method="POST")
  try:
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
      text = reply.read()
    try:
      body = json.loads(text)
    except ValueError:
      raise ServingError(f"{request.full_url} answered {len(text)} byte(s) that are not JSON: "
                         f"{text[:200]!r}") from None
    return _one_answer_per_image(parse_rest_response(body), images, request.full_url)
  except urllib.error.HTTPError as error:  # TF Serving explains itself in a JSON body
    detail = error.read().decode(errors="replace")
    try:
      detail = json.loads(detail).get("error", detail)
    except ValueError:
      pass
    raise ServingError(f"HTTP {error.code} from {request.full_url}: {detail}") from None


def grpc_request(images: Sequence[bytes], model_name: str, *, version: int | None = None,
                 signature_name: str = signatures.SERVING):
  """Makes a tensorflow-serving-api ``PredictRequest`` carrying ``images``.

  They travel as the string tensor ``image_bytes``.
  """
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2

  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  if version is not None:
    request.model_spec.version.value = version
  request.inputs[signatures.IMAGE_BYTES].CopyFrom(
      tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)]))
  return request


def parse_grpc_response(response) -> list[Answer]:
  """Parses a ``PredictResponse`` into answers."""
  import tensorflow as tf

  outputs = {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}
  return [Answer(valid=bool(valid), labels=[label.decode() for label in labels if label],
                 probabilities=np.asarray(probabilities, float).tolist(),
                 decisions=np.asarray(decisions, int).tolist())
          for valid, labels, probabilities, decisions in zip(
              outputs["valid"], outputs["labels"], outputs["probabilities"], outputs["decisions"])]


def predict_grpc(target: str, model_name: str, images: Sequence[bytes], *,
                 version: int | None = None, timeout_s: float = 30.0) -> list[Answer]:
  """Asks the TF Serving gRPC endpoint ``target`` (e.g. localhost:8500) for answers for ``images``.

  The other arguments and the answers are ``predict_rest``'s.
  """
  import grpc
  from tensorflow_serving.apis import prediction_service_pb2_grpc

  if not images:
    return []
  options = [("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
             ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES)]
  with grpc.insecure_channel(target, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    try:
      response = stub.Predict(grpc_request(images, model_name, version=version), timeout=timeout_s)
    except grpc.RpcError as error:
      raise ServingError(f"gRPC {error.code().name} from {target}: {error.details()}") from None
  return _one_answer_per_image(parse_grpc_response(response), images, target)
