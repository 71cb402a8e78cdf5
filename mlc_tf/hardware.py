"""What this machine computes fast: the CPU's model and instruction sets, the GPUs, the precision
that fits them.

A leaf module any package may import, and one that imports no TensorFlow at
load time: the entry points read the CPU from here before TensorFlow starts
(oneDNN's switch is read when TensorFlow loads). Decisions take the facts as
arguments, so tests give them fake machines.
"""

from __future__ import annotations

import dataclasses
import platform
import time

from mlc_tf import config as config_lib

# TensorFlow turns its oneDNN kernels on by itself only where the CPU has one of these (AVX512_VNNI,
# AVX512_BF16, AVX_VNNI, AMX); elsewhere on x86 it leaves them off.
_TF_ONEDNN_DEFAULT_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
                                      "amx_int8", "amx_bf16"})
_NATIVE_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
_NATIVE_FLOAT16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies
PRECISIONS = ("auto", *POLICIES)
# bfloat16 emulated on an AVX2-only CPU (AMD EPYC, no AVX-512): best.py's first epoch at 1.1
# images/s against 6.4 with float32 (issue 21's tools/bench_train.py figures).
_EMULATED_SLOWDOWN = "about 6x slower than float32 (measured on an AVX2-only AMD EPYC)"
# On a CPU whose flags say bfloat16 is native, "auto" still takes float32 where TensorFlow's
# bfloat16 convolution step runs under this share of float32's speed: with oneDNN off
# (TF_ENABLE_ONEDNN_OPTS=0) or capped below AVX512_BF16 (ONEDNN_MAX_CPU_ISA=AVX2) TensorFlow
# emulates bfloat16 there too. Emulated read 0.04-0.12 (AMD EPYC); native, best.py's bfloat16 step
# ran 2.6x float32's on AMX and 1.56x on AVX512_BF16 without AMX (AMD EPYC Zen 5; the probe read
# 1.38-1.41 there): 0.5 overrides the flags only on overwhelming evidence.
_MIN_BFLOAT16_SPEEDUP = 0.5
_UNUSED_UNITS = "oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) or capped (ONEDNN_MAX_CPU_ISA)?"


@dataclasses.dataclass(frozen=True)
class CPU:
  """A CPU as /proc/cpuinfo describes it: its model name and instruction-set flags (lscpu's)."""

  model: str
  flags: frozenset[str]
  machine: str = "x86_64"  # platform.machine()

  @property
  def native_bfloat16(self) -> bool:
    """Tells whether it computes bfloat16 in hardware (AVX512_BF16 or AMX) rather than emulating it
    in float32."""
    return bool(_NATIVE_BFLOAT16_FLAGS & self.flags)

  @property
  def native_float16(self) -> bool:
    return bool(_NATIVE_FLOAT16_FLAGS & self.flags)

  def describe(self) -> dict:
    """Describes it for report.json: the model, and the flags that decide precision and oneDNN."""
    relevant = sorted(self.flags & (_TF_ONEDNN_DEFAULT_FLAGS | _NATIVE_FLOAT16_FLAGS
                                    | {"avx2", "avx512f", "fma"}))
    return {"model": self.model, "machine": self.machine, "flags": relevant}


@dataclasses.dataclass(frozen=True)
class GPU:
  """A GPU TensorFlow sees, with its CUDA compute capability (None when TensorFlow does not say)."""

  name: str
  compute_capability: tuple[int, int] | None

  @property
  def tensor_cores(self) -> bool:
    """Tells whether it has float16 matrix units: compute capability 7.0 (Volta) and later."""
    return self.compute_capability is not None and self.compute_capability >= (7, 0)

  @property
  def native_bfloat16(self) -> bool:
    """Tells whether it has bfloat16 matrix units: compute capability 8.0 (Ampere) and later."""
    return self.compute_capability is not None and self.compute_capability >= (8, 0)


def read_cpu(cpuinfo: str = "/proc/cpuinfo") -> CPU:
  """Reads this machine's CPU; where ``cpuinfo`` cannot be read (not Linux), the model from
  ``platform`` and no flags."""
  model, flags = "", frozenset()
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
          model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 | ARM
          flags = frozenset(value.split())
        if model and flags:
          break
  except OSError:
    pass
  return CPU(model or platform.processor() or "unknown", flags, platform.machine())


def read_gpus() -> list[GPU]:
  """Lists the GPUs TensorFlow sees (imports TensorFlow)."""
  import tensorflow as tf  # here: the entry points read the CPU before TensorFlow may load
  found = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    found.append(GPU(details.get("device_name", device.name), details.get("compute_capability")))
  return found


def onednn_faster(cpu: CPU) -> bool:
  """Tells whether TensorFlow's oneDNN kernels should be on where TensorFlow would leave them off.

  Measured on an AVX2-only AMD EPYC (2 cores): best.py's float32 training through the pipeline at
  21.9 images/s with oneDNN against 12.5 without. TensorFlow turns them on by itself on the CPUs of
  ``_TF_ONEDNN_DEFAULT_FLAGS``; on other architectures nothing was measured, so they are left as
  they are.
  """
  return cpu.machine in ("x86_64", "AMD64") and "avx2" in cpu.flags


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
  """The Keras dtype policy a run trains under, why, and a warning when it will run slowly."""

  policy: str
  reason: str
  warning: str | None = None
  bfloat16_speedup: float | None = None  # measured by bfloat16_conv_speedup, where it decided

  def describe(self) -> dict:
    described = {"policy": self.policy, "reason": self.reason}
    if self.warning:
      described["warning"] = self.warning
    if self.bfloat16_speedup is not None:
      described["bfloat16_conv_speedup"] = round(self.bfloat16_speedup, 2)
    return described


def check_precision(requested: str) -> None:
  """Raises a ``config.ConfigError`` unless ``requested`` is one of ``PRECISIONS``."""
  if requested not in PRECISIONS:
    raise config_lib.ConfigError(f"unknown precision {requested!r} (config.train.precision); "
                                 f"known: {', '.join(PRECISIONS)}")


def choose_precision(requested: str, cpu: CPU, gpus: list[GPU],
                     bfloat16_speedup: float | None = None) -> PrecisionChoice:
  """Chooses ``config.train.precision`` on this hardware: ``auto`` picks 16-bit compute only where
  it is native.

  ``auto``: on a GPU, ``mixed_bfloat16`` from compute capability 8.0 (no loss scaling needed),
  ``mixed_float16`` (Keras adds loss scaling) on 7.x, else float32; on a CPU, ``mixed_bfloat16``
  with AVX512_BF16 or AMX, unless ``bfloat16_speedup`` (``bfloat16_conv_speedup``, where measured)
  shows TensorFlow emulating it there, else float32. A named 16-bit policy is honoured, with a
  warning where the hardware, or TensorFlow on it, emulates it.

  Raises:
    config.ConfigError: ``requested`` is not one of ``PRECISIONS``.
  """
  check_precision(requested)
  if gpus:
    gpu = gpus[0]
    where = f"GPU {gpu.name} (compute capability {_capability(gpu)})"
    if requested == "auto":
      if gpu.native_bfloat16:
        return PrecisionChoice("mixed_bfloat16", f"auto: {where} has bfloat16 tensor cores")
      if gpu.tensor_cores:
        return PrecisionChoice("mixed_float16", f"auto: {where} has float16 tensor cores (loss "
                                                "scaling on)")
      return PrecisionChoice("float32", f"auto: {where} has no tensor cores")
    native = {"float32": True, "mixed_float16": gpu.tensor_cores,
              "mixed_bfloat16": gpu.native_bfloat16}[requested]
    warning = (None if native
               else f"{requested} on {where}, which has no tensor cores for it: expect it slower")
    return PrecisionChoice(requested, f"config.train.precision={requested} on {where}", warning)
  where = f"CPU {cpu.model}"
  emulated_here = (cpu.native_bfloat16 and bfloat16_speedup is not None
                   and bfloat16_speedup < _MIN_BFLOAT16_SPEEDUP)
  measured = ("" if bfloat16_speedup is None
              else f"a bfloat16 convolution step ran at {bfloat16_speedup:.2f}x float32's speed "
                   "here")
  if requested == "auto":
    if emulated_here:
      return PrecisionChoice(
          "float32", f"auto: {where} has AVX512_BF16/AMX, but TensorFlow emulates bfloat16 "
                     f"({measured})",
          f"{where}'s bfloat16 units go unused: {measured}; {_UNUSED_UNITS}", bfloat16_speedup)
    if cpu.native_bfloat16:
      return PrecisionChoice("mixed_bfloat16", f"auto: {where} computes bfloat16 natively "
                                               "(AVX512_BF16/AMX)"
                             + (f"; {measured}" if measured else ""), None, bfloat16_speedup)
    return PrecisionChoice("float32", f"auto: {where} has no native bfloat16 (AVX512_BF16/AMX)")
  warning = None
  if requested == "mixed_bfloat16" and not cpu.native_bfloat16:
    warning = (f"mixed_bfloat16 on {where}, which emulates bfloat16 (no AVX512_BF16 or AMX): "
               f"expect training {_EMULATED_SLOWDOWN}; config.train.precision=auto picks float32 "
               "here")
  elif requested == "mixed_bfloat16" and emulated_here:
    warning = (f"mixed_bfloat16 on {where}, where TensorFlow emulates bfloat16 ({measured}; "
               f"{_UNUSED_UNITS}): expect training slower than float32; "
               "config.train.precision=auto picks float32 here")
  elif requested == "mixed_float16" and not cpu.native_float16:
    warning = (f"mixed_float16 on {where}, which emulates float16 (no AVX512_FP16 or AMX-FP16): "
               "expect training slower than float32; config.train.precision=auto picks what this "
               "CPU computes natively")
  return PrecisionChoice(requested, f"config.train.precision={requested} on {where}", warning,
                         bfloat16_speedup if requested == "mixed_bfloat16" else None)


def bfloat16_conv_speedup(batch: int = 16, side: int = 16, channels: int = 64,
                          repeats: int = 3) -> float:
  """Measures how many times float32's speed a bfloat16 3x3 convolution's training step (forward
  and both gradients) runs at in this TensorFlow (imports TensorFlow).

  The CPU's flags say what the silicon has; this says what TensorFlow's kernels, as configured, make
  of it. A convolution, not a matmul: on an AVX2-only AMD EPYC, where best.py's bfloat16 step ran
  about 6x slower than float32, a bfloat16 matmul still ran at 0.8-1.9x float32's speed, the
  convolution's filter gradient at 0.04-0.12x. The fastest of ``repeats`` after a warm-up: well
  under a second even where bfloat16 is emulated.
  """
  import tensorflow as tf  # here: the entry points read the CPU before TensorFlow may load

  def fastest_seconds(dtype):
    images = tf.cast(tf.random.stateless_normal([batch, side, side, channels], seed=(0, 0)), dtype)
    kernel = tf.Variable(
        tf.cast(tf.random.stateless_normal([3, 3, channels, channels], seed=(0, 1)), dtype))

    def step():
      with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = tf.nn.conv2d(images, kernel, strides=1, padding="SAME")
      return tape.gradient(outputs, [images, kernel])

    seconds = []
    for _ in range(repeats + 1):  # the first builds the kernels
      start = time.perf_counter()
      [gradient.numpy() for gradient in step()]
      seconds.append(time.perf_counter() - start)
    return min(seconds[1:])

  return fastest_seconds(tf.float32) / fastest_seconds(tf.bfloat16)


def resolve_precision(requested: str, cpu: CPU | None = None,
                      gpus: list[GPU] | None = None) -> PrecisionChoice:
  """Runs ``choose_precision`` on this machine (``cpu`` and ``gpus`` read when not given; imports
  TensorFlow).

  Where the CPU's flags say bfloat16 is native and it would be used (no GPU; ``auto`` or
  ``mixed_bfloat16``), ``bfloat16_conv_speedup`` checks that TensorFlow computes it natively too.

  Raises:
    config.ConfigError: ``requested`` is not one of ``PRECISIONS`` (before any probe).
  """
  check_precision(requested)
  cpu = cpu or read_cpu()
  gpus = read_gpus() if gpus is None else gpus
  probe = not gpus and cpu.native_bfloat16 and requested in ("auto", "mixed_bfloat16")
  return choose_precision(requested, cpu, gpus, bfloat16_conv_speedup() if probe else None)


def _capability(gpu: GPU) -> str:
  return "unknown" if gpu.compute_capability is None else ".".join(map(str, gpu.compute_capability))
