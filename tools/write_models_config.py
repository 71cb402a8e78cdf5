"""Writes TF Serving's models.config for the models exported under saved_models/, and beside it
batching.config (--batching_parameters_file) and monitoring.config (--monitoring_config_file).

  # every exported model, latest version only
  python tools/write_models_config.py
  # chosen models; demo pinned to versions 1 and 2
  python tools/write_models_config.py --policy=latest:2 \
      --model=demo=specific:1,2 --model=flickr14

Then serve them all from one container, batched, with Prometheus metrics (docs/serving.md):

  docker run --rm -p 8500:8500 -p 8501:8501 -v "$PWD/saved_models:/models" tensorflow/serving \
      --model_config_file=/models/models.config --enable_batching \
      --batching_parameters_file=/models/batching.config \
      --monitoring_config_file=/models/monitoring.config
"""

from __future__ import annotations

import os

from absl import app, flags

from mlc_tf.serving import models_config

_BASE_DIR = flags.DEFINE_string("base_dir", "saved_models",
                                "Where exports live: <base_dir>/<name>/<version>/.")
_SERVING_BASE = flags.DEFINE_string("serving_base", "/models",
                                    "Where the server sees --base_dir (a mount point).")
_POLICY = flags.DEFINE_string("policy", "latest:1", "Version policy for models without their own: "
                              "latest:N, all, or specific:V1,V2,...")
_MODELS = flags.DEFINE_multi_string(
    "model", [], "NAME or NAME=POLICY; repeat for several. Default: every "
    "exported model under --base_dir, with --policy.")
_OUT = flags.DEFINE_string("out", None, "Output file. Default: <base_dir>/models.config; "
                           "batching.config and monitoring.config go beside it.")
_MAX_BATCH_SIZE = flags.DEFINE_integer("max_batch_size", 64,
                                       "Batching: the most elements in one merged batch.")
_BATCH_TIMEOUT_MICROS = flags.DEFINE_integer(
    "batch_timeout_micros", 2000, "Batching: how long a batch waits to fill, in microseconds.")
_NUM_BATCH_THREADS = flags.DEFINE_integer(
    "num_batch_threads", os.cpu_count() or 1, "Batching: threads running batches (default: "
    "this machine's cores; set the server's).")
_MAX_ENQUEUED_BATCHES = flags.DEFINE_integer(
    "max_enqueued_batches", 100, "Batching: batches that may wait; more requests are refused.")
_PROMETHEUS_PATH = flags.DEFINE_string("prometheus_path", "/monitoring/prometheus/metrics",
                                       "Where the REST port serves Prometheus metrics.")


def main(argv):
  del argv
  exported = models_config.exported_models(_BASE_DIR.value)
  chosen = [spec.partition("=") for spec in _MODELS.value] or [(name, "", "") for name in exported]
  policies = {name: policy or _POLICY.value for name, _, policy in chosen}
  for name, policy in policies.items():
    if name not in exported:
      raise SystemExit(
          f"write_models_config: error: no exported versions of {name!r} under {_BASE_DIR.value}")
  try:
    config = models_config.models_config(policies, _SERVING_BASE.value)
    batching = models_config.batching_parameters(_MAX_BATCH_SIZE.value,
                                                 _BATCH_TIMEOUT_MICROS.value,
                                                 _NUM_BATCH_THREADS.value,
                                                 _MAX_ENQUEUED_BATCHES.value)
    monitoring = models_config.monitoring_config(_PROMETHEUS_PATH.value)
  except ValueError as error:
    raise SystemExit(f"write_models_config: error: {error}") from None
  # TF Serving would wait forever for a pinned version that is absent.
  for entry in config.model_config_list.config:
    missing = sorted(set(entry.model_version_policy.specific.versions) - set(exported[entry.name]))
    if missing:
      raise SystemExit(f"write_models_config: error: {entry.name} has no version(s) {missing}; "
                       f"it has {exported[entry.name]}")
  out = _OUT.value or os.path.join(_BASE_DIR.value, "models.config")
  models_config.write_models_config(config, out)
  print(f"wrote {out}: " + ", ".join(f"{name} ({policy})" for name, policy in policies.items()))
  for file_name, text in (("batching.config", batching), ("monitoring.config", monitoring)):
    with open(os.path.join(os.path.dirname(out), file_name), "w") as f:
      f.write(text)
    print(f"wrote {os.path.join(os.path.dirname(out), file_name)}")


if __name__ == "__main__":
  app.run(main)
