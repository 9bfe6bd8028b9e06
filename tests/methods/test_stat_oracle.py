"""The Countdown oracle teacher: skills read off expressions, the search, and the four teacher operations."""
from __future__ import annotations

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.tasks.safe_arith import evaluate, uses_at_most_once
from skillexp.teachers.base import SkillCatalogue
from skillexp.teachers.oracle import CATALOGUE, expression_skills, oracle_teacher, search

TASK = build_task("countdown", {"num_numbers": 3, "max_number": 30, "num_train": 60, "num_rl": 0, "num_val": 0,
                                "num_test": 0})
CAT = SkillCatalogue.load(CATALOGUE)
SKILLS = CAT.subjects["default"]


def item(numbers: list[int], target: int, reference: str) -> Item:
    return Item(id=f"t-{numbers}-{target}", question=TASK.question(numbers, target), answer=reference,
                meta={"numbers": numbers, "target": target})


@pytest.mark.parametrize(("expr", "skills"), [
    ("2 + 3", {"addition"}),
    ("7", set()),
    ("9 - 4", {"subtraction"}),
    ("(60 / 5) + 3", {"division", "addition", "operation_order"}),
    ("60 / 5 + 3", {"division", "addition", "operation_order"}),  # brackets that change nothing are not grouping
    ("3 + 5 * 2", {"addition", "multiplication", "operation_order", "large_target"}),
    ("(3 + 5) * 2", {"addition", "multiplication", "operation_order", "large_target", "parenthesised_grouping"}),
    ("10 - (3 + 2)", {"subtraction", "addition", "parenthesised_grouping"}),  # compound right operand of -
    ("(10 - 3) + 2", {"subtraction", "addition"}),
    ("9 * 8 - 70", {"multiplication", "subtraction", "operation_order", "large_intermediate"}),
    ("9 * 8 - 7", {"multiplication", "subtraction", "operation_order", "large_intermediate", "large_target"}),
    ("(84 * 26) / 52", {"multiplication", "division", "large_intermediate"}),
    ("12 / (6 / 2)", {"division", "parenthesised_grouping"}),
    ("(30 + 12) - 39 = 3", {"addition", "subtraction", "large_intermediate"}),  # "= rhs" is ignored
])
def test_expression_skills(expr: str, skills: set[str]) -> None:
    assert expression_skills(expr) == skills
    assert skills <= set(SKILLS)


@pytest.mark.parametrize("junk", ["__import__('os')", "9**9**9", "(" * 10_000 + "1" + ")" * 10_000, "", "2 +",
                                  "-3 + 4", "１ + 2", "x" * 10_000])
def test_expression_skills_refuses_junk(junk: str) -> None:
    assert expression_skills(junk) is None


def test_search_finds_every_solution_and_the_reference() -> None:
    for it in TASK.items("train")[:20]:
        found = search(it.meta["numbers"], it.meta["target"])
        assert found.complete and it.answer in found.solutions
        for s in found.solutions:
            value = evaluate(s)
            assert value is not None and value.value == it.meta["target"]
            assert uses_at_most_once(value.numbers, it.meta["numbers"])
    # 6 numbers exhaust a small budget: the search says so rather than pretending it saw everything
    assert not search([3, 7, 11, 25, 50, 75], 999, budget=500).complete


def test_label_skills_reads_the_reference_and_caps() -> None:
    teacher = oracle_teacher(TASK)
    items = [item([84, 26, 52], 42, "(84 * 26) / 52"), item([1, 2], 3, "junk(")]
    labels = teacher.label_skills(items, CAT, max_skills=5)
    assert labels[0] == ["multiplication", "division", "large_intermediate"]  # catalogue order
    assert labels[1] == [] and teacher.counts["label_unparsable_reference"] == 1
    assert teacher.label_skills(items[:1], CAT, max_skills=2)[0] == ["multiplication", "division"]
    assert teacher.counts["label_capped"] == 1


def test_judge_names_the_skills_the_attempt_lacks() -> None:
    teacher = oracle_teacher(TASK)
    div = item([24, 6, 3], 7, "(24 / 6) + 3")
    attempts = ["<answer>(24 / 6) + 3</answer>",  # correct: nothing missing
                "<answer>(24 * 6) + 3</answer>",  # wrong, no division
                "I give up",  # no expression: every skill of the reference
                "<answer>(24 / 3) + 6</answer>"]  # wrong with the same skills: nothing the oracle can name
    j = teacher.judge([div] * 4, attempts, CAT)
    assert [x.correct for x in j] == [True, False, False, False]
    assert j[0].skills == [] and j[1].skills == ["division"]
    assert j[2].skills == ["addition", "division", "operation_order"]
    assert j[3].skills == [] and teacher.counts["judge_no_missing_skill"] == 1
    assert teacher.counts["judge_attempt_unreadable"] == 1


@pytest.mark.parametrize("skill", SKILLS)
def test_propose_makes_solvable_items_that_need_the_skill(skill: str) -> None:
    teacher = oracle_teacher(TASK)
    examples = TASK.items("train")[:3]
    proposals = teacher.propose([examples], [skill], n=3, seed=1)[0]
    assert len(proposals) == 3 and teacher.counts["propose_short"] == 0
    c = TASK.cfg
    for p in proposals:
        numbers, target = p.item.meta["numbers"], p.item.meta["target"]
        assert p.skill == skill and len(numbers) == 3 and c.min_target <= target <= c.max_target
        assert all(c.min_number <= n <= c.max_number for n in numbers) and target not in numbers
        assert TASK.score(p.item, TASK.reference_solution(p.item)) == 1.0
        found = search(numbers, target)
        assert found.complete and all(skill in expression_skills(s) for s in found.solutions)  # needed, not just used
    assert len({p.item.id for p in proposals}) == 3
    assert proposals == teacher.propose([examples], [skill], n=3, seed=1)[0]  # seeded
    assert teacher.propose([examples], ["juggling"], n=1)[0] == [] and teacher.counts["propose_unknown_skill"] == 1


def test_solve_returns_checked_solutions_reference_first() -> None:
    teacher = oracle_teacher(TASK)
    items = TASK.items("train")[:10]
    for it, sols in zip(items, teacher.solve(items, n=3, seed=0)):
        assert len(sols) == 3 and sols[0] == TASK.reference_solution(it)
        assert all(TASK.score(it, s) == 1.0 for s in sols)
    lost = Item(id="q", question="What is 2 + 2?", answer="4")
    assert teacher.solve([lost], n=2) == [[]] and teacher.counts["solve_not_countdown"] == 1


def test_oracle_only_knows_countdown_and_ships_its_catalogue() -> None:
    with pytest.raises(ValueError, match="only Countdown"):
        oracle_teacher(build_task("math", {}))
    assert TASK.skill_catalogue == CATALOGUE and set(SKILLS) == oracle_teacher(TASK).skills


def test_propose_without_a_skill_makes_new_items_like_the_examples() -> None:
    """Embed-Syn's proposals name no skill: the oracle makes any new solvable item of the examples' size."""
    teacher = oracle_teacher(TASK)
    examples = TASK.items("train")[:3]
    proposals = teacher.propose([examples], [""], n=4, seed=2)[0]
    keys = {(tuple(sorted(e.meta["numbers"])), e.meta["target"]) for e in examples}
    assert len(proposals) == 4 and teacher.counts["propose_unknown_skill"] == 0
    for p in proposals:
        assert len(p.item.meta["numbers"]) == 3 and TASK.score(p.item, TASK.reference_solution(p.item)) == 1.0
        assert (tuple(sorted(p.item.meta["numbers"])), p.item.meta["target"]) not in keys
