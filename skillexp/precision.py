"""The precision a run computes in, picked from what the hardware does natively.

`model.dtype: auto` (the engines' weights) and `trainer.precision: auto` (DeepSpeed's compute) resolve here, once,
at start-up and before any stage key is computed, so a stage trained in fp32 is never reused for a bf16 request or
the reverse (the resolved values are what the keys, `config.yaml` and W&B hold):

- bf16 where the device computes it natively: a CUDA GPU with bf16 (Ampere and later), or a CPU whose kernels use
  AVX-512 BF16 or AMX (torch's `get_cpu_capability()` reports AVX512, so `ATEN_CPU_CAPABILITY=avx2` turns it off,
  and `ONEDNN_MAX_CPU_ISA` does not cap oneDNN below AVX-512);
- fp16 with dynamic loss scaling on a CUDA GPU without bf16 (V100, T4): what DeepSpeed and vLLM run there;
- fp32 everywhere else. On a CPU without native bf16 every bf16 matmul is emulated: training is ~20x and sampling
  ~4x slower than in fp32 (measured on a 2-core AVX2 Zen 3; docs/training.md#precision).

An explicit value is obeyed, with a one-line warning when the device emulates it. `detect()` is the one place that
asks the hardware; tests build a `Hardware` for each case.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from skillexp.config import RunConfig

DTYPE_OF = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}  # trainer.precision -> model.dtype
PRECISION_OF = {v: k for k, v in DTYPE_OF.items()}


@dataclass(frozen=True)
class Hardware:
    """What the precision choice depends on."""

    device: str  # "cuda" or "cpu": where the engines and the trainer run
    gpu: str | None = None  # the CUDA device's name
    gpu_bf16: bool = False  # torch.cuda.is_bf16_supported()
    cpu_capability: str = "DEFAULT"  # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ... (honours ATEN_...)
    avx512_bf16: bool = False  # the CPU has the AVX-512 BF16 instructions
    amx: bool = False  # the CPU has AMX tiles (bf16 matmuls in hardware)
    onednn_isa: str | None = None  # ONEDNN_MAX_CPU_ISA, when set: caps oneDNN's kernels (e.g. AVX2)
    cpu_fp16: bool = False  # oneDNN computes fp16 natively (AVX-512 FP16 / AMX-FP16); DeepSpeed's CPU fp16 needs it

    @property
    def cpu_bf16_kernels(self) -> bool:
        """Do the CPU's bf16 matmuls run in hardware? Needs the instructions and kernels allowed to use them."""
        isa_ok = self.onednn_isa is None or self.onednn_isa.upper().startswith(("AVX512", "AVX10", "ALL", "DEFAULT"))
        return (self.avx512_bf16 or self.amx) and self.cpu_capability.startswith("AVX512") and isa_ok

    def native(self, precision: str) -> bool:
        """Does this device compute `precision` (bf16/fp16/fp32) in hardware?"""
        if precision == "fp32":
            return True
        if self.device == "cuda":
            return precision == "fp16" or self.gpu_bf16
        return self.cpu_bf16_kernels if precision == "bf16" else self.cpu_fp16

    def describe(self) -> str:
        if self.device == "cuda":
            return f"CUDA GPU {self.gpu or '?'} ({'with' if self.gpu_bf16 else 'without'} bf16)"
        extensions = [n for n, on in (("AVX-512 BF16", self.avx512_bf16), ("AMX", self.amx)) if on]
        text = f"CPU, torch kernels {self.cpu_capability}, {' and '.join(extensions) or 'no AVX-512 BF16 or AMX'}"
        return text + (f", ONEDNN_MAX_CPU_ISA={self.onednn_isa}" if self.onednn_isa else "")


def detect() -> Hardware:
    """The hardware this process computes on (a CUDA GPU if one is visible, else the CPU), as torch reports it."""
    cpu = dict(cpu_capability=torch.backends.cpu.get_cpu_capability(), onednn_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
               avx512_bf16=_probe(torch.cpu._is_avx512_bf16_supported),
               amx=_probe(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)),
               cpu_fp16=_probe(lambda: torch.ops.mkldnn._is_mkldnn_fp16_supported()))
    if torch.cuda.is_available():
        return Hardware("cuda", gpu=torch.cuda.get_device_name(0), gpu_bf16=torch.cuda.is_bf16_supported(), **cpu)
    return Hardware("cpu", **cpu)


def _probe(fn) -> bool:
    try:
        return bool(fn())
    except Exception:  # noqa: BLE001 - an older torch without the probe: assume the feature is missing
        return False


@dataclass(frozen=True)
class Choice:
    """The resolved `trainer.precision` and `model.dtype`, why, and the warnings for emulated explicit values."""

    precision: str  # bf16 / fp16 / fp32
    dtype: str  # bfloat16 / float16 / float32
    reason: str
    warnings: tuple[str, ...] = ()

    def record(self, hw: Hardware) -> dict[str, Any]:
        """What a run records of it (config.yaml's and W&B's `precision` block)."""
        return {"trainer": self.precision, "model_dtype": self.dtype, "reason": self.reason,
                "warnings": list(self.warnings), "hardware": asdict(hw)}


def announce(record: dict[str, Any], log) -> None:
    """The start-up line that says which precision runs and why, and a warning per emulated explicit value."""
    log.info("precision: trainer %s, model weights %s (%s)", record["trainer"], record["model_dtype"],
             record["reason"])
    for warning in record["warnings"]:
        log.warning(warning)


def auto_precision(hw: Hardware) -> tuple[str, str]:
    """(precision, why) that `auto` picks on `hw`."""
    if hw.native("bf16"):
        return "bf16", f"{hw.describe()} computes bf16 natively"
    if hw.device == "cuda":
        return "fp16", f"{hw.describe()}: fp16 with dynamic loss scaling"
    return "fp32", f"{hw.describe()} would emulate bf16 (~20x slower training, ~4x slower sampling)"


def auto_dtype(device: str) -> str:
    """The `model.dtype` that `auto` picks for an engine on `device` ("cpu", "cuda", "cuda:1")."""
    hw = detect()
    if not device.startswith("cuda"):
        hw = replace(hw, device="cpu")
    return DTYPE_OF[auto_precision(hw)[0]]


def concrete(precision: str) -> str:
    """`trainer.precision` as a value DeepSpeed takes: `auto` (a config built outside a run, whose start-up would
    have resolved it) is picked on this machine."""
    return auto_precision(detect())[0] if precision == "auto" else precision


def choose(dtype: str, precision: str, hw: Hardware) -> Choice:
    """Resolve `model.dtype` and `trainer.precision` (each `auto` or explicit) on `hw`."""
    auto, why = auto_precision(hw)
    out_precision = auto if precision == "auto" else precision
    out_dtype = DTYPE_OF[auto] if dtype == "auto" else dtype
    explicit = [f"{k}={v}" for k, v in (("model.dtype", dtype), ("trainer.precision", precision)) if v != "auto"]
    reason = f"auto: {why}" if not explicit else f"{', '.join(explicit)} as set" + (
        f"; auto would pick {auto} ({why})" if len(explicit) < 2 else "")
    warnings = []
    for key, value, prec in (("trainer.precision", precision, precision),
                             ("model.dtype", dtype, PRECISION_OF.get(dtype, "fp32"))):
        if value != "auto" and not hw.native(prec):
            warnings.append(f"{key}={value} is emulated on this {hw.describe()}: expect it to run several times "
                            f"slower than {key}=auto ({DTYPE_OF[auto] if key == 'model.dtype' else auto}).")
    return Choice(out_precision, out_dtype, reason, tuple(warnings))


def check_supported(precision: str, hw: Hardware) -> None:
    """Refuse what DeepSpeed cannot train here at all (fp16 on a CPU without oneDNN fp16), before anything loads."""
    if precision == "fp16" and hw.device == "cpu" and not hw.cpu_fp16:
        raise ValueError("trainer.precision=fp16: DeepSpeed trains in fp16 only on GPUs and on CPUs with "
                         "AVX-512 FP16 or AMX-FP16, which this one lacks: set trainer.precision=auto (or fp32).")


def resolve_run(run: RunConfig, hw: Hardware | None = None) -> tuple[RunConfig, Choice, Hardware]:
    """`run` with its `auto` precision settings replaced by what `hw` (default: this machine) computes natively."""
    hw = hw or detect()
    choice = choose(run.model.dtype, run.trainer.precision, hw)
    if run.trainer.name != "none" or run.method.name != "none" or run.rl.name != "none":
        check_supported(choice.precision, hw)
    teacher = run.teacher
    if teacher.local_model is not None and teacher.local_model.dtype == "auto":  # a local teacher's labels too
        teacher = replace(teacher, local_model=replace(teacher.local_model, dtype=DTYPE_OF[auto_precision(hw)[0]]))
    method, sft_engine = run.method, run.method.sft.trainer
    if sft_engine is not None:  # SFT's own engine (method.sft.trainer): its `auto` resolved the same way
        sft_precision = auto_precision(hw)[0] if sft_engine.precision == "auto" else sft_engine.precision
        if run.method.name != "none":
            check_supported(sft_precision, hw)
        method = replace(method, sft=replace(method.sft, trainer=replace(sft_engine, precision=sft_precision)))
    return replace(run, model=replace(run.model, dtype=choice.dtype), teacher=teacher, method=method,
                   trainer=replace(run.trainer, precision=choice.precision)), choice, hw
