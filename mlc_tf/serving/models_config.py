"""TF Serving's ``models.config``: several exported models in one server.

Each model has its version policy.

    model_config_list {
      config { name: "demo" base_path: "/models/demo" model_platform: "tensorflow"
               model_version_policy { latest { num_versions: 2 } } }
      ...
    }

``base_path`` is where the server sees ``saved_models/<name>`` (inside the
container, usually ``/models/<name>``), not where it is on this machine.

Beside it go the server's batching parameters (``--batching_parameters_file``
with ``--enable_batching``) and its monitoring config (``--monitoring_config_file``:
a Prometheus endpoint on the REST port). Their messages (``BatchingParameters``,
``MonitoringConfig``) are not in the tensorflow-serving-api package, so they are
written as the text format the server parses, from their documented fields.
"""

from __future__ import annotations

import os
import posixpath
from typing import Mapping

from google.protobuf import text_format
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

VersionPolicy = (
    file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy)


def is_version(name: str) -> bool:
  """A version folder's name: ASCII digits only (``"²".isdigit()`` is true, yet ``int("²")``
  raises); any other folder beside the versions is left alone."""
  return name.isascii() and name.isdigit()


def version_policy(spec: str) -> VersionPolicy:
  """Parses ``latest:N`` (the N highest versions), ``all`` or ``specific:V1,V2,...``.

  Returns the version policy.
  """
  kind, _, arg = spec.partition(":")
  policy = VersionPolicy()
  try:
    if kind == "latest":
      policy.latest.num_versions = int(arg or 1)
      if policy.latest.num_versions < 1:
        raise ValueError
    elif kind == "all" and not arg:
      policy.all.SetInParent()
    elif kind == "specific" and arg:
      policy.specific.versions.extend(int(v) for v in arg.split(","))
    else:
      raise ValueError
  except ValueError:
    raise ValueError(
        f"bad version policy {spec!r}; expected latest:N, all, or specific:V1,V2,...") from None
  return policy


def exported_models(base_dir: str) -> dict[str, list[int]]:
  """Maps each model name to its integer versions, ascending.

  It finds them as ``<base_dir>/<name>/<version>/``.
  """
  models = {}
  for name in sorted(os.listdir(base_dir)):
    model_dir = os.path.join(base_dir, name)
    if os.path.isdir(model_dir):
      versions = sorted(
          int(v)
          for v in os.listdir(model_dir)
          if is_version(v) and os.path.isfile(os.path.join(model_dir, v, "saved_model.pb")))
      if versions:
        models[name] = versions
  return models


def models_config(policies: Mapping[str, str],
                  serving_base: str) -> model_server_config_pb2.ModelServerConfig:
  """Makes one ``config`` entry per {model name: version policy spec}.

  Each is served from ``<serving_base>/<name>``.
  """
  if not policies:
    raise ValueError("no models to put in models.config")
  config = model_server_config_pb2.ModelServerConfig()
  for name, policy in policies.items():
    entry = config.model_config_list.config.add()
    entry.name = name
    entry.base_path = posixpath.join(serving_base, name)
    entry.model_platform = "tensorflow"
    entry.model_version_policy.CopyFrom(version_policy(policy))
  return config


def write_models_config(config: model_server_config_pb2.ModelServerConfig, path: str) -> None:
  """Writes ``config`` in the text format ``tensorflow_model_server --model_config_file`` reads."""
  with open(path, "w") as f:
    f.write(text_format.MessageToString(config))


def batching_parameters(max_batch_size: int, batch_timeout_micros: int, num_batch_threads: int,
                        max_enqueued_batches: int) -> str:
  """Returns TF Serving's ``BatchingParameters`` in text format (``--batching_parameters_file``).

  The server merges concurrent requests of one signature into batches of at most
  ``max_batch_size`` elements, waiting at most ``batch_timeout_micros`` for a batch to fill, on
  ``num_batch_threads`` threads, with at most ``max_enqueued_batches`` waiting (beyond: the
  request is refused, UNAVAILABLE, rather than queued without bound).
  """
  for name, value in (("max_batch_size", max_batch_size), ("num_batch_threads", num_batch_threads),
                      ("max_enqueued_batches", max_enqueued_batches)):
    if value < 1:
      raise ValueError(f"{name} must be at least 1, got {value}")
  if batch_timeout_micros < 0:
    raise ValueError(f"batch_timeout_micros must be at least 0, got {batch_timeout_micros}")
  return (f"max_batch_size {{ value: {max_batch_size} }}\n"
          f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
          f"num_batch_threads {{ value: {num_batch_threads} }}\n"
          f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n")


def monitoring_config(prometheus_path: str) -> str:
  """Returns TF Serving's ``MonitoringConfig`` in text format (``--monitoring_config_file``):
  Prometheus metrics served at ``prometheus_path`` on the REST port."""
  if not prometheus_path.startswith("/"):
    raise ValueError(f"the Prometheus path must start with '/', got {prometheus_path!r}")
  return f"prometheus_config {{\n  enable: true\n  path: \"{prometheus_path}\"\n}}\n"
