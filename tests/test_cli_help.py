"""Every console script's ``--help`` shows its own docstring and flags, not only "Try
--helpfull"."""

import ast
import configparser
import os
import subprocess
import sys

import pytest
from helpers import REPO_ROOT

# A few of each entry point's own flags (the rest are defined the same way).
OWN_FLAGS = {
    "mlc-train": ("--config", "--data_dir", "--workdir", "--[no]export"),
    "mlc-explore": ("--data_dir", "--rules", "--output_dir", "--oof"),
    "mlc-evaluate": ("--model", "--data_dir", "--split"),
    "mlc-cv": ("--config", "--folds", "--workdir"),
    "mlc-grow": ("--config", "--margin", "--max_depth"),
    "mlc-predict": ("--model", "--images", "--output"),
    "mlc-suspects": ("--cv_workdir", "--min_margin", "--top"),
    "mlc-validate-data": ("--data_dir", "--[no]strict"),
    "mlc-export": ("--workdir", "--base_dir", "--max_image_pixels", "--format", "--precision",
                   "--corpus"),
    "mlc-calibrate": ("--model", "--policy", "--target_images", "--prevalence"),
    "mlc-ensemble": ("--members", "--workdir", "--data_dir", "--[no]flip_average", "--[no]export"),
    "mlc-client": ("--rest", "--grpc", "--model"),
    "mlc-review": ("--data_dir", "--corrections", "--port"),
    "mlc-suggest": ("--model", "--images", "--count", "--output"),
}


def _console_scripts() -> dict[str, str]:
  parser = configparser.ConfigParser()
  parser.read(os.path.join(REPO_ROOT, "setup.cfg"))
  lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
  return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def test_every_console_script_is_checked():
  assert set(_console_scripts()) == set(OWN_FLAGS)


def test_every_console_script_runs_through_common_run():
  """``common.run`` is what makes --help describe the entry point, so checking three scripts below
  covers all."""
  for script, target in _console_scripts().items():
    module, function = target.split(":")
    tree = ast.parse(open(os.path.join(REPO_ROOT, *module.split(".")) + ".py").read())
    body = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    calls = {ast.unparse(node.func) for node in ast.walk(body) if isinstance(node, ast.Call)}
    assert "common.run" in calls, f"{script}: {module}.{function} does not call common.run"


# Three of them (each is a process that imports TensorFlow): a training entry point, another, the
# client.
@pytest.mark.parametrize("script", ["mlc-train", "mlc-explore", "mlc-client"])
def test_help_of_a_console_script_lists_its_own_flags(script):
  module, function = _console_scripts()[script].split(":")
  # What pip's generated shim does: a __main__ without docstring or flags calls the entry point.
  shim = (f"import sys; from {module} import {function}; "
          f"sys.argv[0] = {script!r}; sys.exit({function}())")
  proc = subprocess.run([sys.executable, "-c", shim, "--help"], capture_output=True, text=True,
                        cwd=REPO_ROOT, timeout=300,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert proc.returncode == 1, proc.stderr[-2000:]  # absl's --help exits with status 1
  assert proc.stdout.startswith(f"{script}: "), proc.stdout[:300]  # the entry point's docstring
  for flag in OWN_FLAGS[script]:
    assert f"  {flag}:" in proc.stdout, f"{script} --help does not list {flag}:\n{proc.stdout}"
