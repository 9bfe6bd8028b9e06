"""STAT end to end through the CLI with the oracle teacher, on a student that never divides.

The student is the tiny model fine-tuned to answer the validation questions like the `memorizer` fixture: with
the reference where it has no division, and with a wrong, division-free expression where it does. The pipeline
must find exactly the division questions difficult, division must top the Missing-Skill-Profile, and the SFT data
both methods build must stress division well beyond its share of the training split.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.teachers.oracle import expression_skills
from skillexp.utils.io import read_jsonl
from tests.methods.memorize import memorize
from tests.test_main import run_cli

# small numbers make exact division common enough: 5 of these 24 val references divide
TASK = {"num_numbers": 3, "max_number": 12, "num_train": 120, "num_rl": 0, "num_val": 24, "num_test": 4}
COUNTDOWN = build_task("countdown", TASK)


def _divides(expr: str) -> bool:
    return "division" in (expression_skills(expr) or set())


def _without_division(item: Item) -> str:
    """The reference with its divisions turned into another operation, such that it is wrong."""
    for op in "*+-":
        attempt = item.answer.replace("/", op)
        if not COUNTDOWN.check(item, attempt):
            return attempt
    raise AssertionError(f"no wrong division-free variant of {item.answer}")


@pytest.fixture(scope="module")
def no_division_student(tmp_path_factory, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("no_division")
    rows = [{"messages": COUNTDOWN.messages(it) + [
        {"role": "assistant", "content": f"<answer>{_without_division(it) if _divides(it.answer) else it.answer}"
                                         "</answer>"}]} for it in COUNTDOWN.items("val")]
    return memorize(rows, tiny_model_dir, root, max_steps=240, max_length=256)


def _run(student: Path, method: str, run_dir: Path) -> dict[str, float]:
    run_cli(["model=hf", f"model.path={student}", "model.name=no_division", "model.dtype=float32", "generation=hf",
             f"method={method}", "teacher=oracle", *[f"+task.{k}={v}" for k, v in TASK.items() if k != "num_numbers"],
             "method.sampling.temperature=0", "method.sampling.max_tokens=32", "method.stat.k=3",
             "method.num_pairs=400", "method.sft.max_steps=2", "method.sft.max_length=256",
             "trainer.micro_batch_size=4", "trainer.grad_accum=1", "eval.num_items=2", "eval.k=1", "eval.pass_k=[1]",
             "eval.sampling.max_tokens=16", "scoring.workers=0"], run_dir)
    work = run_dir / "sft_data" / "stat"
    division_val = {it.id for it in COUNTDOWN.items("val") if _divides(it.answer)}
    assert len(division_val) == 5
    assert {r["id"] for r in read_jsonl(work / "difficulty.jsonl") if r["difficult"]} == division_val
    counts = json.loads((work / "missing_skill_profile.json").read_text())["counts"]
    assert counts["division"] == 5 and all(c < 5 for s, c in counts.items() if s != "division"), counts
    assert (work / "missing_skill_profile.png").stat().st_size > 1000
    assert (run_dir / "sft" / "model" / "model.safetensors").exists()
    assert json.loads((run_dir / "summary.json").read_text())
    return json.loads((run_dir / "sft_data" / "sft_data_stats.json").read_text())


@pytest.mark.slow
def test_stat_sel_stresses_the_skill_the_student_lacks(no_division_student: Path, tmp_path: Path) -> None:
    stats = _run(no_division_student, "stat_sel", tmp_path)
    rows = read_jsonl(tmp_path / "sft_data" / "sft_data.jsonl")
    items = {it.id: it for it in COUNTDOWN.items("train")}
    train_share = sum(_divides(it.answer) for it in items.values()) / len(items)
    division_rows = sum(_divides(items[r["question_id"]].answer) for r in rows)
    assert division_rows / len(rows) > 2 * train_share, (division_rows, len(rows), train_share)
    assert stats["stat_sel/rows/share/division"] == division_rows / len(rows)
    assert stats["stat_sel/draws/division"] == 5 * 3  # k per (difficult question, division) pair
    assert all(COUNTDOWN.score(items[r["question_id"]], r["messages"][-1]["content"]) == 1.0 for r in rows)


@pytest.mark.slow
def test_stat_syn_synthesises_questions_that_need_the_skill(no_division_student: Path, tmp_path: Path) -> None:
    stats = _run(no_division_student, "stat_syn", tmp_path)
    rows = read_jsonl(tmp_path / "sft_data" / "sft_data.jsonl")
    answers = [COUNTDOWN.extract(r["messages"][-1]["content"]) for r in rows]
    division = [r for r, a in zip(rows, answers) if _divides(a)]
    assert len(division) / len(rows) > 0.5, (len(division), len(rows))  # the train split's share is 18%
    assert all(_divides(a) for r, a in zip(rows, answers) if r["skill"] == "division")  # needed, so always used
    assert stats["stat_syn/questions_kept/division"] == 5 * 2  # 2 proposals per pair, all solvable
    assert stats["stat_syn/rows/share/division"] == max(v for k, v in stats.items() if "/rows/share/" in k)
