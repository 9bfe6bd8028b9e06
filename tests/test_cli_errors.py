"""A user's mistake on the command line gets one line that names the key, the place and the fix, and exit 2;
the traceback only with SKILLEXP_DEBUG=1. `--help` is the app's own page."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra.errors import HydraException

from skillexp.config import load_run_config
from skillexp.user_errors import explain
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose
from tests.test_docs_commands import user_env


def _message(overrides: list[str]) -> str:
    """What the CLI would print for `overrides`, from the exception composition or validation raises."""
    try:
        load_run_config(_compose(overrides))
    except (HydraException, ConfigError) as e:
        message = explain(e)
        assert message is not None, f"{type(e).__name__} not explained: {e}"
        return message
    raise AssertionError(f"{overrides} composed and validated")


@pytest.mark.parametrize(("overrides", "expected"), [
    # a misspelled key without '+': the close keys, not Hydra's advice to append it with '+'
    (["model.temprature=0.5"], "Unknown config key 'model.temprature'. Did you mean 'eval.sampling.temperature'"),
    (["+model.temprature=0.5"], "Unknown config key 'model.temprature'. Did you mean 'eval.sampling.temperature'"),
    (["method.sft.max_stps=3"], "Did you mean 'method.sft.max_steps'?"),
    (["method.sft.optim.lr=abc"], "method.sft.optim.lr must be a number, got 'abc'"),
    # keys that moved: the error names where they live now
    (["trainer.lr=1e-5"], "Did you mean 'method.sft.optim.lr' or 'rl.optim.lr'?"),
    (["eval.score_workers=0"], "Did you mean 'scoring.workers'?"),
    (["task.num_numbrs=3"], "Unknown task parameter 'task.num_numbrs'. Did you mean 'num_numbers'?"),
    (["task.lenient=true"], "'task.lenient' is not set by the task's config file: add it with '+task.lenient=...'"),
    (["model=gpt5"], "model=gpt5 is not an option of 'model'; choose one of: hf, "),
    (["model=hf", "model.name=x", "model.path=/no/such/dir"], "model.path=/no/such/dir is neither a local model"),
    (["model=hf", "model.name=x", "model.path=/tmp"], "is a directory without config.json"),
    (["model=hf", "model.path=/tmp"], "'model.name' has no value: set it on the command line (model.name=...)"),
])
def test_user_errors_name_the_key_and_the_fix(overrides: list[str], expected: str) -> None:
    message = _message(overrides)
    assert expected in message, message
    assert "_schema" not in message and "To append" not in message


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    # from a directory of its own: Hydra makes the run dir (outputs/runs/...) before our refusal
    work = Path(tempfile.mkdtemp(prefix="cli-", dir=Path(os.environ["SKILLEXP_LOG_DIR"]).parent))
    return subprocess.run([sys.executable, "-m", "skillexp", *args], capture_output=True, text=True, timeout=120,
                          env=user_env(**env), cwd=work)


@pytest.mark.parametrize("args", [["model.temprature=0.5"], ["model=hf"], ["model=hf", "model.name=x",
                                                                            "model.path=/no/such/dir"]])
def test_the_cli_exits_2_with_one_line_and_no_traceback(args: list[str]) -> None:
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("skillexp: config error: ") and len(lines) == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "SKILLEXP_DEBUG=1" in lines[1]


@pytest.mark.parametrize("switch", ["SKILLEXP_DEBUG", "HYDRA_FULL_ERROR"])
def test_the_debug_switch_shows_the_traceback(switch: str) -> None:
    proc = _cli("model.temprature=0.5", **{switch: "1"})
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_help_is_the_apps_page() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("skillexp: ") and len(out.splitlines()) < 60
    assert "_schema" not in out and "skillexp report" in out and "skillexp cache" in out
    for group in ("model:", "method:", "experiment:", "hydra/launcher:"):
        assert group in out
    assert "cpu_study" in out and "smollm2_135m" in out
