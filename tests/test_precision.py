"""The precision from the hardware: `auto` picks what each kind of device computes natively, explicit values are
obeyed (with a warning where emulated), and the choice is made before keying, so fp32 and bf16 stages never mix."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from skillexp import precision
from skillexp.config import load_run_config, resolve_precision
from skillexp.models import resolve_dtype
from skillexp.models.config import ModelConfig
from skillexp.pipeline import stage_inputs
from skillexp.precision import Hardware, auto_precision, choose, detect
from skillexp.stage_cache import StageCache
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose

AVX2 = Hardware("cpu", cpu_capability="AVX2")  # Zen 3 and most laptops
AVX512 = Hardware("cpu", cpu_capability="AVX512")  # Skylake-SP: AVX-512 without its BF16 extension
AVX512_BF16 = Hardware("cpu", cpu_capability="AVX512", avx512_bf16=True)  # Zen 4, Cooper Lake
AMX = Hardware("cpu", cpu_capability="AVX512", avx512_bf16=True, amx=True)  # Sapphire Rapids
EMULATED_AVX2 = replace(AVX512_BF16, cpu_capability="AVX2")  # ATEN_CPU_CAPABILITY=avx2 on an AVX-512 BF16 CPU
ONEDNN_AVX2 = replace(AVX512_BF16, onednn_isa="AVX2")  # ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN's matmuls
A100 = Hardware("cuda", gpu="A100", gpu_bf16=True, cpu_capability="AVX2")
V100 = Hardware("cuda", gpu="V100", gpu_bf16=False, cpu_capability="AVX2")


@pytest.mark.parametrize("hw, expected", [
    (AVX2, "fp32"), (AVX512, "fp32"), (AVX512_BF16, "bf16"), (AMX, "bf16"), (EMULATED_AVX2, "fp32"),
    (ONEDNN_AVX2, "fp32"), (replace(AVX512_BF16, onednn_isa="AVX512_CORE_BF16"), "bf16"), (A100, "bf16"),
    (V100, "fp16")])
def test_auto_picks_what_the_device_computes_natively(hw: Hardware, expected: str) -> None:
    choice = choose("auto", "auto", hw)
    assert (choice.precision, choice.dtype) == (expected, {"fp32": "float32", "bf16": "bfloat16",
                                                           "fp16": "float16"}[expected])
    assert choice.reason.startswith("auto: ") and not choice.warnings
    assert hw.describe() in choice.reason


def test_an_explicit_value_is_obeyed_and_warned_about_where_emulated() -> None:
    emulated = choose("bfloat16", "bf16", AVX2)
    assert (emulated.precision, emulated.dtype) == ("bf16", "bfloat16")
    assert len(emulated.warnings) == 2 and all("emulated" in w and "auto (" in w for w in emulated.warnings)
    assert "as set" in emulated.reason
    native = choose("bfloat16", "bf16", AVX512_BF16)
    assert native.warnings == ()
    assert choose("float32", "fp32", AVX512_BF16).warnings == ()  # fp32 is native everywhere, only slower
    mixed = choose("auto", "bf16", AVX2)  # one explicit, one auto: the auto one still follows the hardware
    assert (mixed.precision, mixed.dtype, len(mixed.warnings)) == ("bf16", "float32", 1)
    assert "auto would pick fp32" in mixed.reason


def test_a_local_teachers_weights_follow_the_hardware_too(forced) -> None:
    """A local teacher's labels go into the SFT data's key: its `auto` dtype is resolved with the student's."""
    from skillexp.teachers.config import TeacherConfig

    forced(AVX2)
    run = load_run_config(_compose(["experiment=smoke"]))
    teacher = TeacherConfig(kind="local", local_model=ModelConfig(name="t", source="tiny"))
    run = replace(run, teacher=teacher)
    assert resolve_precision(run, AVX512_BF16).teacher.local_model.dtype == "bfloat16"
    assert resolve_precision(run, AVX2).teacher.local_model.dtype == "float32"
    explicit = replace(run, teacher=replace(teacher, local_model=replace(teacher.local_model, dtype="float16")))
    assert resolve_precision(explicit, AVX2).teacher.local_model.dtype == "float16"


def _keys(run) -> dict[str, str]:
    return {n: s.key for n, s in stage_inputs(run, StageCache(None, Path("run")), Path("base")).items()}


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch):
    """Make `detect()` report a given hardware inside load_run_config."""
    def force(hw: Hardware) -> None:
        monkeypatch.setattr(precision, "detect", lambda: hw)
    return force


def test_the_precision_is_resolved_before_keying(forced) -> None:
    forced(AVX2)
    fp32 = load_run_config(_compose(["experiment=cpu_study", "method=sft", "seed=0"]))
    assert (fp32.trainer.precision, fp32.model.dtype) == ("fp32", "float32")
    assert fp32.precision["hardware"]["cpu_capability"] == "AVX2" and fp32.precision["trainer"] == "fp32"
    explicit = load_run_config(_compose(["experiment=cpu_study", "method=sft", "seed=0", "trainer.precision=fp32",
                                         "model.dtype=float32"]))
    assert _keys(explicit) == _keys(fp32)  # auto that resolved to fp32 is fp32: the same stages
    forced(AVX512_BF16)
    bf16 = load_run_config(_compose(["experiment=cpu_study", "method=sft", "seed=0"]))
    assert (bf16.trainer.precision, bf16.model.dtype) == ("bf16", "bfloat16")
    k32, k16 = _keys(fp32), _keys(bf16)
    assert set(k32) == set(k16) and all(k32[n] != k16[n] for n in k32)  # never reused across precisions


def test_fp16_on_a_cpu_without_it_is_refused_at_start_up(forced) -> None:
    forced(AVX2)
    with pytest.raises(ConfigError, match="trainer.precision=fp16.*trainer.precision=auto"):
        load_run_config(_compose(["experiment=smoke", "trainer.precision=fp16"]))
    with pytest.raises(ConfigError, match="written by skillexp"):
        load_run_config(_compose(["experiment=smoke", "+precision.trainer=bf16"]))


def test_detect_reads_torch_and_honours_aten_cpu_capability() -> None:
    hw = detect()
    assert hw.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert hw.avx512_bf16 == torch.cpu._is_avx512_bf16_supported()
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    code = "from skillexp.precision import detect, auto_precision; h = detect(); " \
           "print(h.cpu_capability, h.onednn_isa, auto_precision(h)[0])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["AVX2", "AVX2", "fp32" if not torch.cuda.is_available() else out.split()[2]]


def test_a_model_config_built_outside_a_run_resolves_auto_the_same_way() -> None:
    auto = ModelConfig(name="t", source="tiny")
    expected = {"bf16": torch.bfloat16, "fp32": torch.float32}[auto_precision(replace(detect(), device="cpu"))[0]]
    assert resolve_dtype(auto, "cpu") == expected
    assert resolve_dtype(replace(auto, dtype="bfloat16"), "cpu") == torch.bfloat16


def test_the_run_records_and_prints_its_choice(tmp_path: Path) -> None:
    from tests.test_main import run_cli

    run_dir = tmp_path / "run"
    result = run_cli(["experiment=smoke", "method=none", "trainer.precision=bf16"], run_dir)
    out = result.stdout + result.stderr
    config = (run_dir / "config.yaml").read_text()
    assert "precision:\n  trainer: bf16\n  model_dtype: float32" in config and "cpu_capability:" in config
    assert "precision: trainer bf16, model weights float32" in out
    assert ("trainer.precision=bf16 is emulated" in out) == (not detect().native("bf16"))
    wandb_run = next((run_dir / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()  # the offline run's record
    assert b'"model_dtype":"float32"' in wandb_run and b'"cpu_capability"' in wandb_run
