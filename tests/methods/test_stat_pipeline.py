"""STAT's whole builder in-process on a random tiny student and the oracle teacher: every step's file is written,
the profile is what the oracle says the student's (unreadable) answers miss, and a resumed run reuses every file
without building a teacher or loading the student."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from skillexp.config import RunConfig, load_run_config
from skillexp.methods.stat.build import build_stat
from skillexp.pipeline import runtime, stage_inputs
from skillexp.stage_cache import StageCache
from skillexp.tasks.base import Item
from skillexp.teachers.base import SkillCatalogue, Teacher
from skillexp.teachers.oracle import CATALOGUE, oracle_teacher
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.utils.io import read_jsonl
from tests.test_configs import _compose

OVERRIDES = ["model=tiny", "generation=hf", "teacher=oracle", "+task.num_train=80", "+task.num_val=10",
             "+task.num_test=6", "+task.num_rl=0", "method.sampling.max_tokens=8", "method.stat.k=2",
             "method.num_pairs=30", "scoring.workers=0", "generation.show_progress=false"]


def _build(run: RunConfig, model_dir: Path, out: Path, factory) -> tuple[list[dict], dict[str, float]]:
    task = run.task.build()
    tracker = Tracker(LoggerConfig(backend="none"), out, {})
    inputs = stage_inputs(run, StageCache(None, out), model_dir)["sft_data"]
    try:
        return build_stat(inputs, task, task.items("train"), out / "sft_data", runtime(run, out, tracker), factory)
    finally:
        tracker.finish()


@pytest.mark.parametrize("method", ["stat_sel", "stat_syn"])
def test_stat_builds_and_resumes_without_teacher(method: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    run = load_run_config(_compose([f"method={method}", *OVERRIDES]))
    task = run.task.build()
    built: list[Teacher] = []

    def factory() -> Teacher:
        built.append(oracle_teacher(task))
        return built[-1]

    rows, stats = _build(run, tiny_model_dir, tmp_path, factory)
    assert len(built) == 1
    work = tmp_path / "sft_data" / "stat"
    steps = ["catalogue.json", "student_samples.jsonl", "difficulty.jsonl", "skill_map.jsonl", "judgements.jsonl",
             "missing_skill_profile.json", "missing_skill_profile.png"]
    steps += ["sel_answers.jsonl"] if method == "stat_sel" else ["syn_proposals.jsonl", "syn_solutions.jsonl"]
    assert all((work / f).exists() for f in steps), sorted(p.name for p in work.iterdir())

    # a random student answers nothing: every val question is difficult, and the oracle reads no expression in the
    # answers, so each question misses the first three (catalogue order) skills its reference shows
    val = task.items("val")
    assert stats[f"{method}/difficult"] == len(val) and stats[f"{method}/student_val_accuracy"] == 0
    catalogue = SkillCatalogue.load(CATALOGUE)
    expected = oracle_teacher(task).label_skills(val, catalogue, max_skills=3)
    assert [j["skills"] for j in read_jsonl(work / "judgements.jsonl")] == expected
    counts = Counter(s for skills in expected for s in skills)
    assert all(stats[f"{method}/profile/count/{s}"] == c for s, c in counts.items())
    assert stats[f"{method}/pairs"] == sum(counts.values())
    assert stats[f"{method}/teacher/label_outside_catalogue"] >= 0  # the oracle's counts are logged

    assert 0 < len(rows) <= 30
    items = {it.id: it for it in task.items("train")}
    blocked = {task.problem_key(it) for split in ("val", "test") for it in task.items(split)}
    for row in rows:
        assert row["source"] == method and row["skill"] in counts
        if method == "stat_sel":
            item = items[row["question_id"]]
        else:
            synthetic = {p["item"]["id"]: p["item"] for p in read_jsonl(work / "syn_proposals.jsonl")}[
                row["question_id"]]
            item = Item(**synthetic)
            assert task.problem_key(item) not in blocked
        assert task.score(item, row["messages"][-1]["content"]) == 1.0
        assert row["messages"][:-1] == task.messages(item)

    # resumed: no teacher is built and no student loaded (the model dir does not even exist)
    again, again_stats = _build(run, tmp_path / "no-model", tmp_path, lambda: pytest.fail("teacher built again"))
    assert again == rows
    assert {k: v for k, v in stats.items() if "/teacher/" not in k} == again_stats
