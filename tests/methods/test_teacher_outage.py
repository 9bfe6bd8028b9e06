"""A teacher outage is a failure, never data: with nothing listening at teacher.base_url the STAT run stops at
start-up, saying which URL and how to fix it, before any stage starts; the same command with the server up asks
the teacher and finishes (issue 13, case 2; issue 24). A server that dies mid-step: tests/teachers/
test_openai_client.py."""
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
           "method.sampling.max_tokens=8", "method.num_pairs=300", "method.sft.max_steps=2",
           "method.sft.max_length=256", "trainer.micro_batch_size=4", "eval=math", "eval.num_items=2", "eval.k=1",
           "eval.pass_k=[1]", "eval.sampling.max_tokens=8", "scoring.workers=0", f"hydra.run.dir={tmp_path / 'run'}"]
    env = subprocess_env(WANDB_MODE="offline")
    down = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert down.returncode == 2, down.stderr[-3000:]
    message = down.stderr.strip().splitlines()[-2]
    assert message.startswith(f"skillexp: teacher error: the teacher endpoint http://127.0.0.1:{port}/v1 cannot be "
                              "reached (connection refused)"), down.stderr[-3000:]
    assert "Traceback" not in down.stderr and "SFT data" not in down.stdout + down.stderr
    assert not list((Path(env["SKILLEXP_STAGE_CACHE"]) / "sft_data").glob("*"))  # no stage started
    with StubOpenAI(reply=ScriptedTeacher(), port=port) as stub:
        up = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    assert len(stub.bodies) > 0  # the rerun asked the teacher instead of reusing an empty answer
    assert (tmp_path / "run" / "summary.json").exists()


def test_a_tolerated_failure_is_used_but_not_saved_and_a_resumed_step_asks_only_for_it(tmp_path: Path) -> None:
    """Within teacher.max_failed_fraction a step goes on without the failed answers, but its file is not written:
    a resumed build runs the step again, gets the answered requests from the teacher's cache and sends only the
    failed one (issue 13, case 2: a rerun retries exactly what failed)."""
    from skillexp.methods.stat.skills import cached, label_rows
    from skillexp.tasks import build_task
    from skillexp.teachers.base import SkillCatalogue
    from skillexp.teachers.chat import LLMTeacher
    from skillexp.teachers.config import TeacherConfig
    from skillexp.teachers.openai_client import OpenAIChat

    task = build_task("math", {"num_train": 4, "num_val": 0, "num_test": 0}, name="math")
    items = task.items("train")[:4]
    catalogue = SkillCatalogue.load(task.skill_catalogue)
    cfg = TeacherConfig(kind="vllm_server", model="scripted", max_retries=0, max_failed_fraction=0.5)
    step = tmp_path / "skill_map.jsonl"
    with StubOpenAI(reply=ScriptedTeacher(), plan=[500]) as stub:
        def teacher() -> LLMTeacher:
            backend = OpenAIChat("scripted", stub.base_url, "SKILLEXP_TEST_UNSET_KEY", concurrency=1, max_retries=0,
                                 cache_dir=tmp_path / "cache")
            return LLMTeacher(backend, task, cfg)

        first = teacher()
        rows = cached(step, lambda: label_rows(first, items, catalogue, 3), first)
        assert sum(not r["skills"] for r in rows) == 1 and first.failed_requests == 1
        assert not step.exists()  # a failed request is not an answer: the step is not saved
        second = teacher()
        again = cached(step, lambda: label_rows(second, items, catalogue, 3), second)
    assert len(stub.bodies) == 5  # 4 the first time (one failed), then only the failed one
    assert stub.bodies[4] == stub.bodies[0]
    assert all(r["skills"] for r in again) and step.exists()
