"""STAT on MATH through the CLI with an LLM teacher: the real OpenAI-compatible client against a scripted chat
server on loopback (the far end of the API, not our code), the shipped MATH set with its subjects, a random tiny
student. The scripted teacher labels and judges with skills from the prompt's own list, answers known questions
with their gold answer, and solves each synthetic question three times as 7, \\frac{14}{2} and 8: math-verify
must group the first two, so every synthetic question is kept with exactly those two solutions.
"""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import SPLITS
from skillexp.teachers.base import SkillCatalogue
from skillexp.utils.io import read_jsonl
from tests.teachers.stub_server import StubOpenAI
from tests.test_main import run_cli

MATH = build_task("math", {})
GOLD = {it.question: it.answer for split in SPLITS for it in MATH.items(split)}
SYNTHETIC_ANSWERS = ["7", "\\frac{14}{2}", "8"]


class ScriptedTeacher:
    """Replies in each STAT prompt's format; a synthetic question's n solutions rotate through SYNTHETIC_ANSWERS."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if "[SKILL LIST]" in prompt:
            skills = json.loads(prompt.split("spelled as written: ", 1)[1].split("\n", 1)[0])
            if "[MODEL SOLUTION]" in prompt:
                return f"<judge>Incorrect</judge><reason>a slip</reason><skill>{skills[0]}, {skills[1]}</skill>"
            return f"<skill>{skills[0]}, {skills[2]}</skill><reason>needed</reason>"
        if "[SKILL] " in prompt:
            skill = prompt.rsplit("[SKILL] ", 1)[1]
            return f"<draft>mix it</draft><question>Using {skill}: what is $3 + 4$?</question>"
        question = prompt.split("\n\n", 1)[1]
        if question in GOLD:
            return f"Worked it out.\n<answer>{GOLD[question]}</answer>"
        with self.lock:
            self.asked[question] += 1
            k = self.asked[question] - 1
        return f"Adding gives it.\n<answer>{SYNTHETIC_ANSWERS[k % 3]}</answer>"


def _first_skills(item, k: int) -> list[str]:
    catalogue = SkillCatalogue.load(MATH.skill_catalogue)
    return catalogue.skills(item)[:k]


@pytest.mark.parametrize("method", [pytest.param("stat_sel", marks=pytest.mark.long), "stat_syn"])
def test_stat_on_math_with_an_llm_teacher(method: str, tmp_path: Path) -> None:
    with StubOpenAI(reply=ScriptedTeacher()) as stub:
        run_cli(["task=math", "model=tiny", "generation=hf", f"method={method}", "teacher=vllm_server",
                 f"teacher.base_url={stub.base_url}", "teacher.model=scripted",
                 f"teacher.cache_dir={tmp_path / 'cache'}", "method.sampling.max_tokens=8",
                 "method.num_pairs=300", "method.sft.max_steps=2", "method.sft.max_length=256",
                 "trainer.micro_batch_size=4", "trainer.grad_accum=1", "eval=math", "eval.num_items=2", "eval.k=1",
                 "eval.pass_k=[1]", "eval.sampling.max_tokens=8", "scoring.workers=0"], tmp_path / "run")
    run = tmp_path / "run"
    work = run / "sft_data" / "stat"
    val = MATH.items("val")
    profile = json.loads((work / "missing_skill_profile.json").read_text())
    # the random student answers nothing right: every val question is judged, missing its subject's first 2 skills
    assert profile["difficult_questions"] == len(val)
    assert profile["counts"] == dict(Counter(s for it in val for s in _first_skills(it, 2)))
    labels = {r["id"]: r["skills"] for r in read_jsonl(work / "skill_map.jsonl")}
    train = {it.id: it for it in MATH.items("train")}
    assert all(labels[i] == [_first_skills(it, 3)[0], _first_skills(it, 3)[2]] for i, it in train.items())
    rows = read_jsonl(run / "sft_data" / "sft_data.jsonl")
    stats = json.loads((run / "sft_data" / "sft_data_stats.json").read_text())
    assert rows and stats[f"{method}/teacher/chat/completed"] > 0 and f"{method}/teacher/chat/failed" not in stats
    # the judge's second skill is never a training label here: those pairs find no questions, and are counted
    assert stats[f"{method}/pairs_without_questions"] == len(val)
    if method == "stat_sel":
        assert all(r["answer_source"] == "teacher" for r in rows)  # gold-verified teacher answers
        assert all(MATH.score(train[r["question_id"]], r["messages"][-1]["content"]) == 1.0 for r in rows)
        assert all(r["skill"] in labels[r["question_id"]] for r in rows)
    else:
        answers = Counter(MATH.extract(r["messages"][-1]["content"]) for r in rows)
        questions = Counter(r["question_id"] for r in rows)
        assert set(answers) == {"7", "\\frac{14}{2}"} and set(questions.values()) == {2}
        assert stats["stat_syn/keep_rate"] == 1.0 and stats["stat_syn/proposals_dropped/duplicate"] > 0
    assert (run / "sft" / "model" / "model.safetensors").exists()
    assert "math/mean@1" in json.loads((run / "summary.json").read_text())
