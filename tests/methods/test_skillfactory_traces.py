"""SkillFactory traces on fixed inputs: exact text for a seed, sampler properties, ablations, verdict parsing."""
from __future__ import annotations

import random

import pytest

from skillexp.methods.skillfactory import phrases
from skillexp.methods.skillfactory.reflect import ReflectionFilterStats, parse_verdict, valid_reflections
from skillexp.methods.skillfactory.traces import Attempt, keep_question, sample_alg1, sample_cfull

R_OK, R_BAD = "Recomputed: fine. <verdict>Correct</verdict>", "3+5 is 8, not 16. <verdict>Incorrect</verdict>"
ATTEMPTS = [
    Attempt(0, "3 + 5 = 8 <answer>3 + 5</answer>", "3 + 5", False, "original", (R_BAD,)),
    Attempt(1, "(3 + 5) * 2 = 16 <answer>(3 + 5) * 2</answer>", "(3 + 5) * 2", True, "rephrase", (R_OK,)),
    Attempt(2, "3 * 5 = 15 <answer>3 * 5</answer>", "3 * 5", False, "alternatively", (R_BAD,)),
    Attempt(3, "2 * (5 + 3) <answer>2 * (5 + 3)</answer>", "2 * (5 + 3)", True, "plan_and_execute", (R_OK,)),
]


def test_cfull_exact_trace_for_seed_0() -> None:
    traces = sample_cfull(ATTEMPTS, random.Random(0), max_attempts=5)
    assert [t.num_attempts for t in traces] == [1, 2, 3, 4]  # N=5 needs five attempts
    assert traces[1].text == (
        "<think>\n"
        "<sample>\n3 * 5 = 15 <answer>3 * 5</answer>\n</sample>\n"
        "<reflect>\n3+5 is 8, not 16. <verdict>Incorrect</verdict>\n</reflect>\n"
        "My last attempt wasn't correct, but I'll refine it and try again.\n"
        "<sample>\n2 * (5 + 3) <answer>2 * (5 + 3)</answer>\n</sample>\n"
        "<reflect>\nRecomputed: fine. <verdict>Correct</verdict>\n</reflect>\n"
        "</think>\n\n\n"
        "In conclusion, the answer is:\n\n"
        "<answer>\n2 * (5 + 3)\n</answer>")
    assert traces[1].attempts == [2, 3] and traces[1].variants == ["alternatively", "plan_and_execute"]
    assert traces == sample_cfull(ATTEMPTS, random.Random(0), max_attempts=5)  # deterministic per seed


@pytest.mark.parametrize("seed", range(20))
def test_cfull_properties(seed: int) -> None:
    for t in sample_cfull(ATTEMPTS, random.Random(seed)):
        assert t.correctness[-1] is True and len(set(t.attempts)) == t.num_attempts
        assert t.text.count("<sample>") == t.num_attempts == t.text.count("<reflect>")
        assert t.text.rstrip().endswith("</answer>") and t.text.startswith("<think>\n<sample>")


@pytest.mark.parametrize("seed", range(20))
def test_alg1_has_fewer_incorrect_than_correct(seed: int) -> None:
    (t,) = sample_alg1(ATTEMPTS, random.Random(seed), l_max=5)
    assert t.correctness[-1] and t.correctness.count(False) < t.correctness.count(True)


def test_glue_follows_the_previous_attempts_correctness() -> None:
    incorrect_only = set(phrases.incorrect_glue()) - set(phrases.GENERIC_GLUE)
    correct_only = set(phrases.correct_glue()) - set(phrases.GENERIC_GLUE)
    for seed in range(30):
        for t in sample_cfull(ATTEMPTS, random.Random(seed)):
            lines = t.text.split("\n")
            glues = [lines[i + 1] for i, line in enumerate(lines) if line == "</reflect>" and lines[i + 1] != "</think>"]
            for glue, ok in zip(glues, t.correctness):
                assert glue not in (incorrect_only if ok else correct_only)


def test_ablations() -> None:
    t = sample_cfull(ATTEMPTS, random.Random(1), ablation="no_reflections")[2]
    assert "<reflect>" not in t.text and t.correctness[-1]
    glue = [line for line in t.text.split("\n") if line in phrases.GENERIC_GLUE]
    assert len(glue) == t.num_attempts - 1
    last = [t.correctness[-1] for seed in range(40)
            for t in sample_cfull(ATTEMPTS, random.Random(seed), ablation="no_sample_order")]
    assert not all(last), "no_sample_order must not always end on a correct attempt"
    ends = [t.text.rsplit("<answer>", 1)[1] for t in sample_cfull(ATTEMPTS, random.Random(3), ablation="no_sample_order")]
    assert all(e.strip().removesuffix("</answer>").strip() in ("(3 + 5) * 2", "2 * (5 + 3)") for e in ends)


def test_fused_phrases_reproduced_or_split() -> None:
    assert len(phrases.correct_glue()) == 10 and len(phrases.incorrect_glue()) == 13
    assert len(phrases.correct_glue(split_fused=True)) == 14 and len(phrases.incorrect_glue(split_fused=True)) == 14
    assert any("just in case.That answer" in p for p in phrases.correct_glue())


def test_question_filter() -> None:
    assert keep_question(ATTEMPTS, min_attempts=4)
    assert not keep_question(ATTEMPTS, min_attempts=5)
    assert not keep_question([a for a in ATTEMPTS if not a.correct], min_attempts=1)
    unreflected = [Attempt(a.index, a.text, a.answer, a.correct, a.variant) for a in ATTEMPTS]
    assert not keep_question(unreflected, 1) and keep_question(unreflected, 4, ablation="no_reflections")


@pytest.mark.parametrize(("text", "verdict"), [
    ("ok <verdict>Correct</verdict>", True), ("<verdict> INCORRECT </verdict>", False),
    ("<verdict>correctly</verdict>", None), ("<verdict>Correct", None), ("no tags", None), ("", None), (None, None),
    ("<verdict><verdict>Correct</verdict></verdict>", None), ("<verdict>Incorrect</verdict><verdict>Correct</verdict>", False),
    ("x" * 100_000 + "<verdict>Correct</verdict>", None),
])
def test_parse_verdict(text, verdict) -> None:
    assert parse_verdict(text) is verdict


def test_valid_reflections_counts_why() -> None:
    stats = ReflectionFilterStats()
    kept = valid_reflections([R_OK, R_BAD, "no verdict", "a fast check <verdict>Correct</verdict>"], True,
                             ["idea", "fast"], stats)
    assert kept == [R_OK]
    assert (stats.total, stats.kept, stats.no_verdict, stats.wrong_verdict, stats.banned_substring) == (4, 1, 1, 1, 1)
