"""A teacher outage is a failure, never data: with nothing listening at teacher.base_url the STAT step stops,
saying what failed and how many requests, and saves nothing; the same command with the server up asks again and
finishes (issue 13, case 2)."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env
from tests.methods.test_stat_math import ScriptedTeacher
from tests.teachers.stub_server import StubOpenAI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_teacher_outage_stops_the_step_saves_nothing_and_the_rerun_asks_again(tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "skillexp", "task=math", "model=tiny", "generation=hf", "method=stat_syn",
           "teacher=vllm_server", f"teacher.base_url=http://127.0.0.1:{port}/v1", "teacher.model=scripted",
           "teacher.max_retries=0", "teacher.timeout_s=5", f"teacher.cache_dir={tmp_path / 'cache'}",
           "method.sampling.max_tokens=8", "method.stat.target_size=300", "method.sft.max_steps=2",
           "method.sft.max_length=256", "trainer.micro_batch_size=4", "eval=math", "eval.num_items=2", "eval.k=1",
           "eval.pass_k=[1]", "eval.sampling.max_tokens=8", "eval.score_workers=0", f"hydra.run.dir={tmp_path / 'run'}"]
    env = subprocess_env(WANDB_MODE="offline")
    down = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert down.returncode == 2, down.stderr[-3000:]
    message = down.stderr.strip().splitlines()[-2]
    assert message.startswith("skillexp: teacher error: the teacher failed ") and "connection refused" in message
    assert "Traceback" not in down.stderr
    stage = next(iter((Path(env["SKILLEXP_STAGE_CACHE"]) / "sft_data").glob("*.partial")))  # kept for the rerun
    assert not list(stage.rglob("skill_map.jsonl")) and not list(stage.rglob("judgements.jsonl"))
    with StubOpenAI(reply=ScriptedTeacher(), port=port) as stub:
        up = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    assert len(stub.bodies) > 0  # the rerun asked the teacher instead of reusing an empty answer
    assert (tmp_path / "run" / "summary.json").exists()
