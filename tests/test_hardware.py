"""Hardware facts and what follows: precision for fake CPUs and GPUs, oneDNN, the entry points'
environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlc_tf import config as config_lib
from mlc_tf import hardware
from mlc_tf.cli import _set_tensorflow_environment, _verbose

AMX = hardware.CPU("Intel(R) Xeon(R) Platinum 8480+",
                   frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
AVX2 = hardware.CPU("AMD EPYC 7763 64-Core Processor", frozenset({"avx2", "fma"}))
ARM = hardware.CPU("Neoverse-N1", frozenset({"asimd"}), machine="aarch64")
H100, V100, K80 = (hardware.GPU("H100",
                                (9, 0)), hardware.GPU("Tesla V100",
                                                      (7, 0)), hardware.GPU("Tesla K80", (3, 7)))


def test_cpu_is_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text(
      "processor\t: 0\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
      "flags\t\t: fpu sse2 avx2 fma\n"
      "processor\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
      "flags\t\t: fpu sse2 avx2 fma\n"
  )
  cpu = hardware.read_cpu(str(cpuinfo))
  assert cpu.model == "AMD EPYC 7763 64-Core Processor" and cpu.flags == {
      "fpu", "sse2", "avx2", "fma"
  }
  assert not cpu.native_bfloat16
  assert hardware.read_cpu(str(tmp_path / "absent")).flags == frozenset()


@pytest.mark.parametrize("cpu, gpus, policy", [
    (AMX, [], "mixed_bfloat16"), (AVX2, [], "float32"), (ARM, [], "float32"),
    (AVX2, [H100], "mixed_bfloat16"), (AVX2, [V100], "mixed_float16"), (AMX, [K80], "float32")])
def test_auto_precision_is_16_bit_only_where_the_hardware_computes_it(cpu, gpus, policy):
  choice = hardware.choose_precision("auto", cpu, gpus)
  assert choice.policy == policy and choice.warning is None
  assert (gpus[0].name if gpus else cpu.model) in choice.reason


def test_an_emulated_16_bit_policy_is_honoured_with_a_warning():
  choice = hardware.choose_precision("mixed_bfloat16", AVX2, [])
  assert (choice.policy == "mixed_bfloat16" and "emulates bfloat16" in choice.warning
          and "slower" in choice.warning)
  assert "no tensor cores" in hardware.choose_precision("mixed_float16", AVX2, [K80]).warning
  assert hardware.choose_precision("mixed_bfloat16", AMX, []).warning is None
  assert hardware.choose_precision("float32", AVX2, []).warning is None
  assert hardware.choose_precision("mixed_float16", AMX,
                                   [V100]).describe()["policy"] == "mixed_float16"


def test_auto_takes_float32_where_tensorflow_emulates_the_cpus_native_bfloat16():
  # AMX flags, but oneDNN off or capped (ONEDNN_MAX_CPU_ISA=AVX2): the convolution probe reads
  # emulation.
  choice = hardware.choose_precision("auto", AMX, [], bfloat16_speedup=0.08)
  assert (choice.policy == "float32" and "emulates bfloat16" in choice.reason
          and "0.08x" in choice.reason)
  assert "ONEDNN_MAX_CPU_ISA" in choice.warning and choice.describe(
  )["bfloat16_conv_speedup"] == 0.08
  native = hardware.choose_precision("auto", AMX, [], bfloat16_speedup=2.6)
  assert native.policy == "mixed_bfloat16" and native.warning is None and "2.60x" in native.reason
  asked = hardware.choose_precision("mixed_bfloat16", AMX, [], bfloat16_speedup=0.08)
  assert asked.policy == "mixed_bfloat16" and "slower than float32" in asked.warning


@pytest.mark.parametrize("requested, cpu, gpus, probed", [
    ("auto", AMX, [], True), ("mixed_bfloat16", AMX, [], True), ("float32", AMX, [], False),
    ("auto", AMX, [H100], False), ("auto", AVX2, [], False), ("mixed_bfloat16", AVX2, [], False)])
def test_the_bfloat16_probe_runs_only_where_the_flags_say_native_and_it_would_decide(
    monkeypatch, requested, cpu, gpus, probed):
  calls = []
  monkeypatch.setattr(hardware, "bfloat16_conv_speedup", lambda: calls.append(1) or 0.08)
  choice = hardware.resolve_precision(requested, cpu, gpus)
  assert bool(calls) is probed
  assert (choice.bfloat16_speedup == 0.08) is probed


def test_the_bfloat16_probe_reads_what_this_tensorflow_computes():
  speedup = hardware.bfloat16_conv_speedup()
  if not hardware.read_cpu().native_bfloat16:
    assert speedup < hardware._MIN_BFLOAT16_SPEEDUP  # emulated: 0.07-0.13 on an AVX2-only AMD EPYC
  elif os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0" and "ONEDNN_MAX_CPU_ISA" not in os.environ:
    # native, as TensorFlow leaves oneDNN on such a CPU
    assert speedup > hardware._MIN_BFLOAT16_SPEEDUP
  else:
    pytest.skip(
        "oneDNN off or capped on a CPU with native bfloat16: what TensorFlow computes then is "
        "what the probe is there to find out")


def test_an_unknown_precision_is_a_config_error_before_any_probe(monkeypatch):
  monkeypatch.setattr(hardware, "bfloat16_conv_speedup", lambda: pytest.fail("probed"))
  with pytest.raises(config_lib.ConfigError, match="unknown precision 'bf16'"):
    hardware.resolve_precision("bf16", AMX, [])


def test_an_unknown_precision_is_a_config_error():
  with pytest.raises(config_lib.ConfigError, match="unknown precision 'bf16'.*auto"):
    hardware.choose_precision("bf16", AMX, [])


def test_onednn_is_turned_on_where_measured_faster_unless_the_user_chose():
  environ = {}
  _set_tensorflow_environment(environ, ["mlc-train"], AVX2)
  assert environ == {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
  environ = {"TF_ENABLE_ONEDNN_OPTS": "0"}
  _set_tensorflow_environment(environ, ["mlc-train"], AVX2)
  assert environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
  environ = {}
  _set_tensorflow_environment(environ, ["mlc-train", "--verbosity=1"], ARM)
  assert environ == {}  # not measured on ARM; TensorFlow's own log lines asked for


def test_importing_the_entry_points_package_leaves_the_environment_alone():
  """Only a command that runs sets TensorFlow's environment (cli.start), not code importing cli/."""
  code = ("import os; before = dict(os.environ); import mlc_tf.cli.common; "
          "print(dict(os.environ) == before)")
  env = {key: value for key, value in os.environ.items()
         # both unset: start() would set one
         if key not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=env)
  assert out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("argv, verbose", [(["x"], False), (["x", "--verbosity=0"], False),
                                           (["x", "--verbosity=1"], True), (["x", "-v", "2"], True),
                                           (["x", "--verbosity", "debug"], True),
                                           (["x", "--config.model.width=1"], False)])
def test_verbosity_is_read_from_the_command_line(argv, verbose):
  assert _verbose(argv) is verbose
