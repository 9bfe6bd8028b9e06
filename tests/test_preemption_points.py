"""A scheduler's signal at every kind of point of an SFT run and a GRPO run (issue 13, case 1): set-up, data,
inside a step, during a checkpoint, during validation, during the export, during eval. Each ends in status 75
with no summary, and the same command then finishes with the weights and the metrics of an uninterrupted run.
A signal during the export lets it finish (the rerun reuses the exported model instead of training again).

The signal is sent by the process to itself at the start of the N-th call of a named function (tests/signal_at.py),
so each case lands where it says, every time."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp.preemption import EXIT_PREEMPTED
from tests.conftest import subprocess_env
from tests.test_main import ROOT, run_cli
from tests.test_preemption import GRPO

SFT = ["experiment=smoke", "method.sft.max_steps=12", "trainer.save_every_steps=1000", "eval.num_items=1"]

SIGNAL_AT = str(Path(__file__).with_name("signal_at.py"))
SFT_POINTS = {  # point: (function, call, extra args, what the rerun says: None where it reuses nothing)
    "set-up": ("skillexp.training.sft:build_engine", 1, [], "stage sft_data: reusing"),
    "data": ("skillexp.methods.build:reference_rows", 1, [], None),
    "step": ("skillexp.training.sft:sft_loss", 6, [], "resuming SFT at step"),
    "checkpoint": ("skillexp.training.engine:atomic_write_json", 1, ["trainer.save_every_steps=10"],
                   "resuming SFT at step 10"),
    "export": ("skillexp.training.sft:export_hf", 1, [], "SFT already done"),
    "eval": ("skillexp.eval.stage:run_eval", 1, [], "stage sft: reusing"),
}
GRPO_POINTS = {
    "set-up": ("skillexp.rl.grpo:build_engine", 1, [], "stage eval: reusing"),
    "pre-RL eval": ("skillexp.eval.stage:run_eval", 1, [], None),
    "step": ("skillexp.rl.grpo:collect", 3, [], "resuming GRPO at step 3"),
    "validation": ("skillexp.rl.grpo:run_eval", 1, ["rl.val_every_steps=2", "rl.val_before_train=false"],
                   "resuming GRPO at step 2"),
    "checkpoint": ("skillexp.training.engine:atomic_write_json", 1, ["rl.save_every_steps=3"],
                   "resuming GRPO at step 3"),
    "export": ("skillexp.rl.grpo:export_hf", 1, [], "GRPO already done"),
    "eval": ("skillexp.eval.stage:run_eval", 2, [], "stage rl: reusing"),
}
# the rest run in `make test-long`; SFT's checkpoint and signal paths are also in test_preemption.py's two-rank test
IN_SUITE = {("grpo", "step")}
CASES = [pytest.param(kind, point, marks=() if (kind, point) in IN_SUITE else pytest.mark.long, id=f"{kind}-{point}")
         for kind, points in (("sft", SFT_POINTS), ("grpo", GRPO_POINTS)) for point in points]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """An uninterrupted run per config, made once; checkpoint cadence changes no result, validation may (it samples)."""
    made: dict[tuple[str, ...], Path] = {}

    def get(kind: str, extra: list[str]) -> Path:
        args = (*(SFT if kind == "sft" else GRPO), *(a for a in extra if "save_every_steps" not in a))
        if args not in made:
            root = tmp_path_factory.mktemp(f"reference-{kind}")
            run_cli([*args, f"paths.stage_cache_dir={root / 'cache'}"], root / "run")
            made[args] = root / "run"
        return made[args]

    return get


@pytest.mark.parametrize(("kind", "point"), [(k, p) for k, points in (("sft", SFT_POINTS), ("grpo", GRPO_POINTS))
                                            for p in points])
def test_every_point_names_a_function_the_stage_calls_by_that_name(kind: str, point: str) -> None:
    """The long cases below signal at a module's attribute; one renamed or no longer imported there would make
    its case wait for a signal that never comes. Checked here, in the suite, in milliseconds."""
    import importlib

    module, attr = (SFT_POINTS if kind == "sft" else GRPO_POINTS)[point][0].split(":")
    owner = importlib.import_module(module)
    for part in attr.split("."):
        owner = getattr(owner, part)
    assert callable(owner)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "point"), CASES)
def test_a_signal_at_any_point_exits_for_a_requeue_and_the_rerun_matches(kind: str, point: str, reference,
                                                                         tmp_path: Path) -> None:
    target, call, extra, resumed = (SFT_POINTS if kind == "sft" else GRPO_POINTS)[point]
    args = [*(SFT if kind == "sft" else GRPO), *extra, f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_dir = tmp_path / "run"
    first = subprocess.run([sys.executable, SIGNAL_AT, target, str(call), "SIGTERM", "--", *args,
                            f"hydra.run.dir={run_dir}"], cwd=ROOT, env=subprocess_env(WANDB_MODE="offline"),
                           capture_output=True, text=True, timeout=600)
    log = first.stdout + first.stderr
    assert f"signal_at: SIGTERM at call {call}" in log, log[-3000:]
    assert first.returncode == EXIT_PREEMPTED, log[-3000:]
    assert not (run_dir / "summary.json").exists()
    again = run_cli(args, run_dir)
    out = again.stdout + again.stderr
    if resumed is None:
        assert "reusing" not in out, out[-3000:]
    else:
        assert resumed in out, out[-3000:]
    ref = reference(kind, extra)
    stage = "sft" if kind == "sft" else "rl"
    assert (run_dir / stage / "model" / "model.safetensors").read_bytes() == \
        (ref / stage / "model" / "model.safetensors").read_bytes()
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads((ref / "summary.json").read_text())
