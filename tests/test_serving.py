"""The TF Serving client, mlc-client and models.config, against an emulated TF Serving that never
imports mlc_tf."""

import base64
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from helpers import REPO_ROOT
from tensorflow_serving.config import model_server_config_pb2

from mlc_tf.serving import client, models_config, signatures

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
EMULATOR = os.path.join(REPO_ROOT, "tests", "tf_serving_emulator.py")


@pytest.fixture(scope="module")
def server(tiny_saved_model, tmp_path_factory):
  """The emulator serving saved_models/tiny: {"rest": url, "grpc": target, "version": int}."""
  log = tmp_path_factory.mktemp("emulator") / "stderr.txt"
  with open(log, "w") as stderr:
    proc = subprocess.Popen([sys.executable, EMULATOR,
                             f"--model_dir={os.path.dirname(tiny_saved_model)}",
                             "--name=tiny"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env=ENV)
  try:
    line = proc.stdout.readline()
    assert line, f"the emulator died: {log.read_text()[-3000:]}"
    ready = json.loads(line)
    # it replayed the export's warm-up requests, as TF Serving does before serving a version
    assert not ready["imported_mlc_tf"] and ready["warmup_requests"] == 4
    yield {"rest": f"http://127.0.0.1:{ready['rest_port']}",
           "grpc": f"127.0.0.1:{ready['grpc_port']}",
           "version": ready["version"]}
  finally:
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def images(tiny_trained, tmp_path_factory):
  """[(path, bytes)] in a folder of their own: three corpus images (one grayscale) and a text file
  named .jpg."""
  root, _, _ = tiny_trained
  folder = tmp_path_factory.mktemp("to_send")
  contents = {f"im{i}.jpg": open(os.path.join(root, "images", f"im{i}.jpg"),
                                 "rb").read() for i in (1, 5, 7)}
  contents["notes.jpg"] = b"a text file, not an image\n"
  for name, data in contents.items():
    (folder / name).write_bytes(data)
  return [(str(folder / name), data) for name, data in contents.items()]


@pytest.fixture(scope="module")
def expected(tiny_saved_model, images):
  """The loaded signature's own answers, in this process: what every client must get back."""
  signature = tf.saved_model.load(tiny_saved_model).signatures[signatures.SERVING]
  out = signature(image_bytes=tf.constant([data for _, data in images]))
  return [client.Answer(valid=bool(valid), labels=[label.decode() for label in labels if label],
                        probabilities=probabilities.tolist(), decisions=decisions.tolist())
          for valid, labels, probabilities, decisions in zip(
              out["valid"].numpy(), out["labels"].numpy(), out["probabilities"].numpy(),
              out["decisions"].numpy())]


def assert_same_answers(got, want):
  assert [(a.valid, a.labels, a.decisions) for a in got] == [(a.valid, a.labels,
                                                              a.decisions) for a in want]
  np.testing.assert_allclose([a.probabilities for a in got], [a.probabilities for a in want],
                             atol=1e-6)


def test_rest_request_is_tf_serving_row_format():
  assert client.rest_url("http://host:8501/", "demo") == "http://host:8501/v1/models/demo:predict"
  assert client.rest_url("http://host:8501", "demo",
                         3) == "http://host:8501/v1/models/demo/versions/3:predict"
  body = client.rest_request([b"\xff\xd8\xff\x00", b""])
  assert body == {"signature_name": "serving_default",
                  "instances": [{"b64": "/9j/AA=="}, {"b64": ""}]}
  assert base64.b64decode(body["instances"][0]["b64"]) == b"\xff\xd8\xff\x00"
  with pytest.raises(client.ServingError, match="bad input"):
    client.parse_rest_response({"error": "bad input"})


def test_grpc_request_carries_a_string_batch():
  request = client.grpc_request([b"a", b"bc"], "demo", version=2)
  assert (request.model_spec.name, request.model_spec.signature_name,
          request.model_spec.version.value) == (
      "demo", "serving_default", 2)
  assert tf.make_ndarray(request.inputs["image_bytes"]).tolist() == [b"a", b"bc"]


def test_rest_and_grpc_clients_get_the_models_answers(server, images, expected):
  data = [d for _, d in images]
  assert_same_answers(client.predict_rest(server["rest"], "tiny", data), expected)
  assert_same_answers(client.predict_grpc(server["grpc"], "tiny", data), expected)
  assert_same_answers(client.predict_rest(server["rest"], "tiny", data[:1],
                                          version=server["version"]), expected[:1])
  assert expected[0].valid and not expected[-1].valid
  with pytest.raises(client.ServingError, match="HTTP 404"):
    client.predict_rest(server["rest"], "tiny", data[:1], version=server["version"] + 1)
  with pytest.raises(client.ServingError, match="NOT_FOUND"):
    client.predict_grpc(server["grpc"], "other", data[:1])


def test_mlc_client_prints_labels_per_image(server, images, expected):
  folder = os.path.dirname(images[0][0])
  command = [sys.executable, "-m", "mlc_tf.cli.client", f"--rest={server['rest']}", "--model=tiny",
             "--batch_size=2"]
  proc = subprocess.run([*command, *[path for path, _ in images]], capture_output=True, text=True,
                        env=ENV,
                        cwd=REPO_ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert lines == [f"{path}\t{','.join(answer.labels)}" if answer.valid else
                   f"{path}\tINVALID (not a decodable JPEG/PNG/GIF/BMP)"
                   for (path, _), answer in zip(images, expected)]
  assert "4 images, 1 invalid" in proc.stderr

  proc = subprocess.run([*command, "--json", folder], capture_output=True, text=True, env=ENV,
                        cwd=REPO_ROOT,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in proc.stdout.strip().splitlines()]
  # a folder: its files, sorted
  assert [row.pop("path") for row in rows] == [path for path, _ in images]
  assert_same_answers([client.Answer(**row) for row in rows], expected)


def test_an_export_whose_warm_up_file_is_broken_does_not_load(tiny_saved_model, tmp_path):
  version = tmp_path / "tiny" / "1"
  shutil.copytree(tiny_saved_model, version)
  warmup = version / "assets.extra" / "tf_serving_warmup_requests"
  warmup.write_bytes(warmup.read_bytes()[:-10])  # a record cut short: its checksum fails
  proc = subprocess.run([sys.executable, EMULATOR, f"--model_dir={tmp_path / 'tiny'}",
                         "--name=tiny"], capture_output=True, text=True, env=ENV, timeout=300)
  assert proc.returncode != 0 and "warm-up of" in proc.stderr and "failed" in proc.stderr


def fake_exports(base, versions):
  for name, numbers in versions.items():
    for number in numbers:
      os.makedirs(os.path.join(base, name, str(number)))
      open(os.path.join(base, name, str(number), "saved_model.pb"), "wb").close()


def test_models_config_lists_several_models_with_version_policies(tmp_path):
  fake_exports(tmp_path, {"demo": [1, 2, 10], "tiny": [1]})
  os.makedirs(tmp_path / "tiny" / ".staging-abc")  # an export in progress: not a version
  os.makedirs(tmp_path / "empty")
  fake_exports(tmp_path, {"demo": ["²"]})  # "²".isdigit() is true, yet int("²") raises
  assert models_config.exported_models(str(tmp_path)) == {"demo": [1, 2, 10], "tiny": [1]}
  from mlc_tf.serving import prediction
  assert prediction.saved_model_dir(str(tmp_path / "demo")) == str(tmp_path / "demo" / "10")

  path = str(tmp_path / "models.config")
  models_config.write_models_config(
      models_config.models_config({"demo": "latest:2", "tiny": "specific:1", "all": "all"},
                                  "/models"), path)
  parsed = text_format.Parse(open(path).read(), model_server_config_pb2.ModelServerConfig())
  entries = {c.name: c for c in parsed.model_config_list.config}
  assert (entries["demo"].base_path == "/models/demo"
          and entries["demo"].model_platform == "tensorflow")
  assert entries["demo"].model_version_policy.latest.num_versions == 2
  assert list(entries["tiny"].model_version_policy.specific.versions) == [1]
  assert entries["all"].model_version_policy.WhichOneof("policy_choice") == "all"
  for bad in ("latest:0", "newest", "specific:", "specific:one", "all:3"):
    with pytest.raises(ValueError, match="bad version policy"):
      models_config.version_policy(bad)


def test_write_models_config_tool(tmp_path):
  fake_exports(tmp_path, {"demo": [1, 2], "tiny": [3]})
  tool = [sys.executable, os.path.join(REPO_ROOT, "tools", "write_models_config.py"),
          f"--base_dir={tmp_path}"]
  proc = subprocess.run([*tool, "--policy=latest:2"], capture_output=True, text=True, env=ENV,
                        cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stderr
  parsed = text_format.Parse((tmp_path / "models.config").read_text(),
                             model_server_config_pb2.ModelServerConfig())
  assert [(c.name, c.model_version_policy.latest.num_versions)
          for c in parsed.model_config_list.config] == [("demo", 2), ("tiny", 2)]
  # beside it, what --batching_parameters_file and --monitoring_config_file read
  batching = text_format.Parse((tmp_path / "batching.config").read_text(),
                               serving_message("BatchingParameters"))
  assert (batching.max_batch_size.value, batching.batch_timeout_micros.value,
          batching.max_enqueued_batches.value) == (64, 2000, 100)
  assert batching.num_batch_threads.value >= 1
  monitoring = text_format.Parse((tmp_path / "monitoring.config").read_text(),
                                 serving_message("MonitoringConfig"))
  assert monitoring.prometheus_config.enable
  assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
  proc = subprocess.run([*tool, "--max_batch_size=0"], capture_output=True, text=True, env=ENV,
                        cwd=REPO_ROOT)
  assert proc.returncode != 0 and "max_batch_size must be at least 1" in proc.stderr

  proc = subprocess.run([*tool, "--model=demo=specific:1,5"], capture_output=True, text=True,
                        env=ENV, cwd=REPO_ROOT)
  assert proc.returncode != 0 and "demo has no version(s) [5]" in proc.stderr


def serving_message(name):
  """TF Serving's ``BatchingParameters`` or ``MonitoringConfig`` (session_bundle_config.proto,
  monitoring_config.proto), which tensorflow-serving-api leaves out, rebuilt from their fields."""
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  proto = descriptor_pb2.FileDescriptorProto(name="serving_configs.proto", package="tfs",
                                             dependency=["google/protobuf/wrappers.proto"])
  types = descriptor_pb2.FieldDescriptorProto
  batching = proto.message_type.add(name="BatchingParameters")
  for number, field in enumerate(("max_batch_size", "batch_timeout_micros",
                                  "max_enqueued_batches", "num_batch_threads"), start=1):
    batching.field.add(name=field, number=number, type=types.TYPE_MESSAGE,
                       type_name=".google.protobuf.Int64Value", label=types.LABEL_OPTIONAL)
  prometheus = proto.message_type.add(name="PrometheusConfig")
  prometheus.field.add(name="enable", number=1, type=types.TYPE_BOOL, label=types.LABEL_OPTIONAL)
  prometheus.field.add(name="path", number=2, type=types.TYPE_STRING, label=types.LABEL_OPTIONAL)
  monitoring = proto.message_type.add(name="MonitoringConfig")
  monitoring.field.add(name="prometheus_config", number=1, type=types.TYPE_MESSAGE,
                       type_name=".tfs.PrometheusConfig", label=types.LABEL_OPTIONAL)
  pool.Add(proto)
  return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tfs.{name}"))()


@pytest.mark.parametrize("reply, message", [
    (b"<html>maintenance</html>", "that are not JSON"),
    (json.dumps({"predictions": [{"valid": 1, "labels": ["cat"], "probabilities": [0.9],
                                  "decisions": [1]}]}).encode(),
     r"answered 1 photo\(s\) for the 2 sent"),
    (json.dumps({"outputs": {}}).encode(), "not this model's row format"),
])
def test_rest_client_refuses_a_reply_that_would_lose_or_garble_photos(reply, message):
  """A proxy's 200 page, a reply one photo short, another format: a ServingError naming it,
  never a traceback or a photo silently dropped."""
  import http.server
  import threading

  class Handler(http.server.BaseHTTPRequestHandler):

    def do_POST(self):  # noqa: N802 (http.server's name)
      self.rfile.read(int(self.headers["Content-Length"]))
      self.send_response(200)
      self.send_header("Content-Length", str(len(reply)))
      self.end_headers()
      self.wfile.write(reply)

    def log_message(self, *args):
      pass

  httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  threading.Thread(target=httpd.serve_forever, daemon=True).start()
  try:
    with pytest.raises(client.ServingError, match=message):
      client.predict_rest(f"http://127.0.0.1:{httpd.server_port}", "tiny", [b"a", b"b"])
  finally:
    httpd.shutdown()
