"""Teacher prompts and the parsing of teacher output: tolerant where safe, bounded on anything, counted always."""
from __future__ import annotations

import time
from collections import Counter

import pytest

from skillexp.tasks.base import Item
from skillexp.teachers import prompts
from skillexp.teachers.base import SkillCatalogue

CATALOGUE = SkillCatalogue({
    "Algebra": ["solving equations", "algebraic manipulation", "ratio and proportion", "quadratic equations",
                "basic arithmetic operations", "order of operations"],
    "Number Theory": ["prime factorization", "modular arithmetic", "basic arithmetic operations"],
})
ITEM = Item("q1", "Solve 2x + 3 = 7.", "2", {"subject": "Algebra"})


def _skills(text: str | None, max_skills: int = 5) -> tuple[list[str] | None, Counter[str]]:
    counts: Counter[str] = Counter()
    return prompts.parse_skills(text, ITEM, CATALOGUE, max_skills, "label", counts), counts


@pytest.mark.parametrize(("text", "expected"), [
    ("<skill>solving equations, basic arithmetic operations</skill><reason>...</reason>",
     ["solving equations", "basic arithmetic operations"]),
    ("<SKILL> Solving_Equations ;algebraic-manipulation </Skill>", ["solving equations", "algebraic manipulation"]),
    ('<skill>["ratio and proportion", "order of operations"]</skill>', ["ratio and proportion", "order of operations"]),
    ("<skill>\n1. quadratic equations\n2) solving equations.\n- `order of operations`\n</ skill>",
     ["quadratic equations", "solving equations", "order of operations"]),
    ("<skill>old list</skill> on second thought: <skill>solving equations</skill>", ["solving equations"]),
])
def test_skill_lists_in_many_spellings(text: str, expected: list[str]) -> None:
    found, counts = _skills(text)
    assert found == expected
    assert counts["label/parsed"] == 1 and counts["label/unparsable"] == 0


def test_close_matches_are_normalised_and_counted_apart_from_exact_ones() -> None:
    found, counts = _skills("<skill>Solving equation, algebraic manipulations, basic arithmetic operations</skill>")
    assert found == ["solving equations", "algebraic manipulation", "basic arithmetic operations"]
    assert counts["label/normalised"] == 2 and counts["label/exact"] == 1


def test_out_of_catalogue_duplicates_and_overflow_are_dropped_and_counted() -> None:
    text = ("<skill>prime factorization, quantum chromodynamics, solving equations, Solving Equations, "
            "solving_equations, algebraic manipulation, ratio and proportion, order of operations</skill>")
    found, counts = _skills(text, max_skills=3)
    # prime factorization is a skill of number theory, not of this algebra question
    assert found == ["solving equations", "algebraic manipulation", "ratio and proportion"]
    assert counts["label/out_of_catalogue_dropped"] == 2
    assert counts["label/duplicate_dropped"] == 2
    assert counts["label/over_max_dropped"] == 1


def test_subject_decides_the_list() -> None:
    item = Item("q2", "Find 91 mod 7.", "0", {"subject": "Number Theory"})
    counts: Counter[str] = Counter()
    found = prompts.parse_skills("<skill>modular arithmetic, solving equations</skill>", item, CATALOGUE, 5,
                                 "label", counts)
    assert found == ["modular arithmetic"] and counts["label/out_of_catalogue_dropped"] == 1


@pytest.mark.parametrize("text", [
    None, "", "no tags at all, just solving equations", "<skill>solving equations", "</skill>solving equations<skill>",
    "<skill>" + "x" * 10_000 + "</skill>", "\x00\xff<skill\n>", "<<<<>>>>" * 1000,
])
def test_unreadable_output_is_counted_not_raised(text: str | None) -> None:
    found, counts = _skills(text)
    assert found is None and counts == Counter({"label/unparsable": 1})


def test_a_list_with_nothing_usable() -> None:
    found, counts = _skills("<skill>, ,;; none of these\n</skill>")
    assert found == [] and counts["label/no_valid_skill"] == 1 and counts["label/out_of_catalogue_dropped"] == 1


def test_huge_and_hostile_outputs_parse_quickly() -> None:
    hostile = [
        "<skill>" + ",".join(["solving equations"] * 5_000) + "</skill>",  # capped list length
        "<skill>" + "a" * 3_000 + "," * 900 + "</skill>",  # many empty pieces, one long unknown name
        "<skill " * 200_000,  # 1.4 MB of unclosed openers
        "x" * 10_000_000 + "<skill>solving equations</skill>",  # 10 MB, the answer at the end
        ("<judge>" + "not " * 100_000 + "correct</judge>") * 3,
    ]
    start = time.perf_counter()
    for text in hostile:
        _skills(text)
        prompts.parse_judgement(text, ITEM, CATALOGUE, Counter())
        prompts.parse_question(text, Counter())
        prompts.parse_answer(text, Counter())
    assert time.perf_counter() - start < 2.0
    assert _skills(hostile[3])[0] == ["solving equations"]
    found, counts = _skills("<skill>" + ", ".join(["prime factorization"] * 40) + "</skill>")
    assert found == [] and counts["label/over_max_dropped"] == 40 - prompts.MAX_LIST_ITEMS


@pytest.mark.parametrize(("text", "verdict"), [
    ("<judge>Correct</judge>", True), ("<judge> The solution is CORRECT. </judge>", True),
    ("<judge>incorrect</judge>", False), ("<judge>The answer is not correct</judge>", False),
    ("<judge>Wrong: the sign flips</judge>", False), ("<judge>hmm</judge>", None), ("correct", None), (None, None),
])
def test_verdicts(text: str | None, verdict: bool | None) -> None:
    assert prompts.parse_verdict(text) is verdict


def test_judgement_parses_all_three_tags_and_counts() -> None:
    counts: Counter[str] = Counter()
    text = ("<judge>incorrect</judge><reason>It divides by zero.</reason>"
            "<skill>order of operations, Basic arithmetic operation, astrology</skill>")
    j = prompts.parse_judgement(text, ITEM, CATALOGUE, counts)
    assert (j.correct, j.skills, j.reason) == (False, ["order of operations", "basic arithmetic operations"],
                                               "It divides by zero.")
    assert counts["judge/verdict_incorrect"] == 1 and counts["judge/out_of_catalogue_dropped"] == 1
    empty = prompts.parse_judgement("I cannot judge this.", ITEM, CATALOGUE, counts)
    assert (empty.correct, empty.skills) == (None, []) and counts["judge/no_verdict"] == 1
    assert counts["judge/unparsable"] == 1


def test_proposals_and_answers() -> None:
    counts: Counter[str] = Counter()
    text = "<reason>r</reason><draft>use a ratio</draft><question> If 3 pens cost $6, what do 5 cost? </question>"
    assert prompts.parse_question(text, counts) == ("If 3 pens cost $6, what do 5 cost?", "use a ratio")
    assert prompts.parse_question("<question></question>", counts) is None
    assert counts == Counter({"propose/parsed": 1, "propose/unparsable": 1})
    counts.clear()
    assert prompts.parse_answer("so <answer> 10 </answer>", counts) == "10"
    assert prompts.parse_answer(r"hence $\boxed{\frac{1}{2}}$.", counts) == r"\frac{1}{2}"
    assert prompts.parse_answer("I give up", counts) is None
    assert counts == Counter({"solve/tagged": 1, "solve/boxed": 1, "solve/no_answer": 1})
    assert prompts.question_id("a") == prompts.question_id("a") != prompts.question_id("b")


def test_prompts_follow_the_papers_structure() -> None:
    label = prompts.label_messages(ITEM, CATALOGUE.skills(ITEM), 5)[0]["content"]
    assert "[SKILL LIST]" in label and '"solving equations"' in label and ITEM.question in label
    assert "<skill>" in label and "at most 5" in label
    judge = prompts.judge_messages(ITEM, "x" * 50_000 + "THE END", CATALOGUE.skills(ITEM))[0]["content"]
    assert all(t in judge for t in ("<judge>", "<reason>", "<skill>", "[MODEL SOLUTION]", "THE END"))
    assert len(judge) < 14_000  # long student solutions are clipped in the middle, the end is kept
    propose = prompts.propose_messages([("q1?", "s1"), ("q2?", "s2"), ("q3?", "s3")], "solving equations")
    text = propose[0]["content"]
    assert all(f"[QUESTION {i}] q{i}?\n[SOLUTION {i}] s{i}" in text for i in (1, 2, 3))
    assert all(t in text for t in ("<reason>", "<draft>", "<question>", "[SKILL] solving equations"))
    assert "<answer></answer>" in prompts.solve_messages(ITEM, " (your equation)")[0]["content"]
