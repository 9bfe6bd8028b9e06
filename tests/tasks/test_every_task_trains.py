"""Every task kind is a `task=` option and trains as Countdown does: SFT data from its reference solutions, SFT,
GRPO on its rl split, the eval (hub-backed tasks on the generated stand-ins of skillexp/tasks/standins.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillexp.tasks import TASKS
from tests.test_configs import CONF
from tests.test_main import run_cli

SHORT = ["experiment=smoke", "rl=grpo_cpu", "rl.steps=1", "rl.prompts_per_step=2", "rl.group_size=2",
         "rl.mini_batch_prompts=2", "rl.sampling.max_tokens=16", "trainer.micro_batch_size=4", "eval.num_items=1"]
SPLITS = {t: ["task.num_val=2", "task.num_rl=2"] for t in ("gsm8k", "multiple_choice", "openthoughts")}


def test_every_task_kind_is_a_task_option() -> None:
    assert {p.stem for p in (CONF / "task").glob("*.yaml")} == set(TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("task", [pytest.param(t, marks=() if t in ("gsm8k", "acronym") else pytest.mark.long)
                                  for t in sorted(TASKS)])
def test_every_task_trains_end_to_end(task: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_cli([*SHORT, f"task={task}", *SPLITS.get(task, [])], run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    stages = json.loads((run_dir / "stages.json").read_text())
    assert {"sft_data", "sft", "pre_rl", "rl", "eval"} <= set(stages)
    rows = [json.loads(line) for line in (run_dir / "sft_data" / "sft_data.jsonl").read_text().splitlines()]
    assert rows and rows[0]["messages"][-1]["role"] == "assistant"
    assert any(k.startswith("rl/") for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               for k in json.loads(line))
    assert "avg/score" in summary
