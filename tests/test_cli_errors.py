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


GEOMETRY = ["experiment=smoke", "rl=grpo_cpu", "trainer.num_processes=2", "rl.prompts_per_step=2",
            "rl.mini_batch_prompts=2", "rl.group_size=4"]


def test_a_batch_that_does_not_split_is_refused_at_start_up_in_one_line() -> None:
    """GRPO's update on two ranks: 2 prompts x 4 completions / 2 ranks = 4 sequences per rank, fewer than one
    micro-batch of 8. Refused by the config check, before any stage, with the value that fits."""
    proc = _cli(*GEOMETRY)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0] == ("skillexp: config error: the batch sizes do not fit together on 2 ranks: "
                        "rl.mini_batch_prompts x rl.group_size / ranks = 2 x 4 / 2 = 4 sequences per update and rank "
                        "is not a multiple of trainer.micro_batch_size=8: trainer.micro_batch_size=4 would fit."
                        ), lines[0]


def test_every_batch_that_does_not_split_is_told_at_once() -> None:
    """Four mistakes across SFT and GRPO, one message, each with a value that fits; and those values do."""
    bad = ["method=sft", "rl=grpo_cpu", "trainer.num_processes=2", "trainer.micro_batch_size=3",
           "method.sft.batch_size=10", "rl.prompts_per_step=3", "rl.mini_batch_prompts=2"]
    message = _message(bad)
    assert message.startswith("config error: the batch sizes do not fit together on 2 ranks: (1) "), message
    for part in ("(1) method.sft.batch_size=10 is not a multiple of trainer.micro_batch_size x ranks = 3 x 2: "
                 "method.sft.batch_size=12 or trainer.micro_batch_size=1 would fit",
                 "(2) rl.prompts_per_step=3 is not a multiple of rl.mini_batch_prompts=2: rl.prompts_per_step=4 or "
                 "rl.mini_batch_prompts=1 would fit",
                 "(3) rl.prompts_per_step=3 does not split into whole groups over 2 ranks",
                 "(4) rl.mini_batch_prompts x rl.group_size / ranks = 2 x 8 / 2 = 8 sequences per update and rank "
                 "is not a multiple of trainer.micro_batch_size=3: trainer.micro_batch_size=2 would fit"):
        assert part in message, (part, message)
    assert "(5)" not in message
    fixed = [*bad[:3], "trainer.micro_batch_size=2", "method.sft.batch_size=12", "rl.prompts_per_step=4",
             "rl.mini_batch_prompts=2"]
    load_run_config(_compose(fixed))


def test_a_dead_teacher_is_told_in_seconds_at_start_up() -> None:
    """STAT with an API teacher whose port refuses connections: one request at start-up says so, with the URL and
    the fix, before the student samples anything (it took 96 s of retries when found by the first request)."""
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    start = time.monotonic()
    proc = _cli("experiment=smoke", "method=stat_sel", "teacher=vllm_server", f"teacher.base_url={url}")
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"skillexp: teacher error: the teacher endpoint {url} cannot be reached "
                               "(connection refused)"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "SFT data" not in proc.stdout + proc.stderr
    assert elapsed < 60, elapsed  # start-up (imports, the tiny model) and one refused connection


# what the start-up checks may raise: the exceptions load_run_config and run_pipeline's checks turn into a user's
# error (one line, exit 2); anything else from them would reach the user as a traceback
USER_ERRORS = {"ValueError", "ConfigError", "FileNotFoundError", "UnknownKeyError", "TeacherAPIError", "MissingData"}


def _validation_functions():
    """Every config dataclass's __post_init__ and check/problems methods, and the start-up check functions, in
    the modules that define configs (config.py files) or check them at start-up."""
    import ast

    root = Path(__file__).resolve().parents[1] / "skillexp"
    files = sorted(root.rglob("config.py")) + [root / "utils" / "schema.py", root / "precision.py",
                                               root / "models" / "__init__.py", root / "training" / "memory.py",
                                               root / "tasks" / "__init__.py", root / "tasks" / "sources.py",
                                               root / "tasks" / "base.py"]
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (node.name == "__post_init__" or node.name.startswith(
                    ("check", "validate", "_validate", "resolve", "load_run_config", "engines", "grad_accum",
                     "read_catalogue", "build_task", "task_spec"))
                    or node.name.endswith("problems")):
                yield path.relative_to(root.parent), node


def test_the_start_up_checks_raise_only_what_becomes_a_one_line_error() -> None:
    """Walks the validation code: every `raise` in it raises an exception the CLI tells in one line."""
    import ast

    walked, wrong = 0, []
    for path, fn in _validation_functions():
        for node in ast.walk(fn):
            if isinstance(node, ast.Raise) and node.exc is not None:
                walked += 1
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else getattr(exc, "attr", ast.unparse(exc))
                if name not in USER_ERRORS and name not in {"e", "err"}:  # `raise e`: re-raised as it came
                    wrong.append(f"{path}:{node.lineno} {fn.name} raises {name}")
    assert walked >= 35, walked  # the walk found the checks (40 raises on 2026-12-07)
    assert wrong == [], wrong


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
