"""The API key reaches the server and nothing else: not the run dir (config, metrics, W&B files), not the cache,
not logs or console output, not the errors raised, even when the server echoes the key back in its errors."""
from __future__ import annotations

import logging
import traceback
from dataclasses import asdict
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skillexp.config import load_run_config
from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.teachers import SkillCatalogue, build_teacher
from skillexp.teachers.openai_client import TeacherAPIError
from skillexp.tracking import Tracker
from skillexp.utils.io import atomic_write_text
from tests.teachers.stub_server import StubOpenAI
from tests.test_configs import _compose

KEY = "sk-skillexp-FAKE-7f3a9c1e5b2d4f60aa"
CATALOGUE = SkillCatalogue({"default": ["addition", "division"]})
TASK = build_task("countdown", {"num_numbers": 3})


def _reply(body: dict) -> str:
    return "<judge>correct</judge><skill>addition</skill>"


def test_the_key_never_leaves_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SKILLEXP_TEST_TEACHER_KEY", KEY)
    caplog.set_level(logging.DEBUG)  # the openai and HTTP libraries log requests at DEBUG
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    run = load_run_config(_compose([
        "teacher=vllm_server", "teacher.api_key_env=SKILLEXP_TEST_TEACHER_KEY", f"teacher.cache_dir={cache_dir}",
        "teacher.max_retries=1", "teacher.concurrency=1", "teacher.max_failed_fraction=0.5", "logger.mode=offline"]))
    items = [Item(f"q{i}", f"What is {i} + {i}?", str(2 * i), {}) for i in range(6)]
    with StubOpenAI(reply=_reply, plan=[500, 500, 429], echo_auth_in_errors=True) as stub:
        run.teacher.base_url = stub.base_url
        config = asdict(run)
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))  # as the pipeline
        tracker = Tracker(run.logger, run_dir, config)
        teacher = build_teacher(run.teacher, run.method.name, TASK, Path(run.paths.cache_dir), run.seed)
        labels = teacher.label_skills(items, CATALOGUE)
        judgements = teacher.judge(items, ["2"] * 6, CATALOGUE)
        tracker.log(teacher.metrics())
        logging.getLogger("skillexp").info("teacher %r counts %s", teacher.backend, dict(teacher.counts))
        teacher.close()
    assert stub.auth and all(a == f"Bearer {KEY}" for a in stub.auth)  # the key was really used
    assert teacher.counts["chat/failed"] >= 1 and sum(map(bool, labels)) + teacher.counts["chat/failed"] == 6
    assert all(j.correct for j in judgements)

    with StubOpenAI(plan=[401] * 4, echo_auth_in_errors=True) as refusing:
        run.teacher.base_url = refusing.base_url
        run.teacher.cache_dir = str(tmp_path / "cache2")
        teacher = build_teacher(run.teacher, run.method.name, TASK, Path(run.paths.cache_dir), run.seed)
        with pytest.raises(TeacherAPIError) as e:
            teacher.label_skills(items[:2], CATALOGUE)
        tracker.log({"error": 1.0})
        logging.getLogger("skillexp").error("teacher failed: %s", e.value)
    assert KEY in refusing.auth[0]
    tracker.finish()

    assert KEY not in "".join(traceback.format_exception(e.value)) and KEY not in repr(e.value)
    assert KEY not in caplog.text and caplog.text  # something was logged, none of it the key
    out, err = capfd.readouterr()
    assert KEY not in out + err
    files = [p for d in (run_dir, cache_dir, tmp_path / "cache2") for p in d.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.parent.parent == cache_dir for p in files)
    leaks = [p for p in files if KEY.encode() in p.read_bytes()]
    assert leaks == []
