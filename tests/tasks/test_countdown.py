"""Countdown: generation properties and the safe checker against correct, wrong and hostile answers."""
from __future__ import annotations

import pickle
import time

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import SPLITS, Item
from skillexp.tasks.safe_arith import evaluate, uses_at_most_once

SMALL = {"num_train": 60, "num_rl": 20, "num_val": 10, "num_test": 30}


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_items_are_deterministic_solvable_and_disjoint(n: int) -> None:
    task = build_task("countdown", {"num_numbers": n, **SMALL})
    again = build_task("countdown", {"num_numbers": n, **SMALL})
    assert task.name == f"countdown_{n}"
    splits = {s: task.items(s) for s in SPLITS}
    assert {s: len(v) for s, v in splits.items()} == {"train": 60, "rl": 20, "val": 10, "test": 30}
    for s in SPLITS:
        assert [(i.question, i.answer) for i in splits[s]] == [(i.question, i.answer) for i in again.items(s)]
    keys = [(tuple(sorted(i.meta["numbers"])), i.meta["target"]) for v in splits.values() for i in v]
    assert len(keys) == len(set(keys)), "splits overlap or repeat a problem"
    for item in (i for v in splits.values() for i in v):
        nums, target = item.meta["numbers"], item.meta["target"]
        assert len(nums) == n and all(1 <= x <= 100 for x in nums) and 1 <= target <= 1000
        assert target not in nums, "a target equal to a given number is solved by writing it down"
        assert str(target) in item.question and str(nums) in item.question
        assert task.score(item, task.reference_solution(item)) == 1.0
        assert sorted(evaluate(item.answer).numbers) == sorted(nums), "the reference uses every number once"


def test_growing_train_keeps_the_test_set_and_seed_changes_it() -> None:
    a = build_task("countdown", SMALL)
    b = build_task("countdown", {**SMALL, "num_train": 600})
    c = build_task("countdown", {**SMALL, "data_seed": 7})
    assert [i.question for i in a.items("test")] == [i.question for i in b.items("test")]
    assert [i.question for i in a.items("test")] != [i.question for i in c.items("test")]


def test_ranges_are_configurable_and_impossible_ranges_fail_clearly() -> None:
    task = build_task("countdown", {**SMALL, "max_number": 9, "max_target": 50})
    assert all(max(i.meta["numbers"]) <= 9 and i.meta["target"] <= 50 for i in task.items("train"))
    tiny = build_task("countdown", {"num_numbers": 2, "max_number": 2, **SMALL})
    with pytest.raises(ValueError, match="could not make"):
        tiny.items("test")


def test_items_are_cached_and_not_pickled() -> None:
    task = build_task("countdown", SMALL)
    assert task.items("train") is task.items("train")
    assert len(pickle.dumps(task)) < 2_000


ITEM = Item(id="x", question="", answer="(3 + 5) * 2", meta={"numbers": [3, 5, 2, 7], "target": 16})
TASK = build_task("countdown", {"num_numbers": 4})


@pytest.mark.parametrize("completion", [
    "<answer>(3 + 5) * 2</answer>",  # 7 unused: each number at most once, a subset is fine
    "<answer>\n  (3+5)*2 = 16\n</answer>",  # "= target" is accepted
    "<answer>  ( 3 +   5 )\t*  2   =16 </answer>",
    "Let me try 3 + 5 = 8, then 8 * 2 = 16.\n<answer>(3 + 5) * 2</answer>\nThat's it.",
    "<answer>wrong</answer> then <answer>2 * (5 + 3)</answer>",  # the last answer counts
    "<Answer>(3 + 5) * 2</ answer >",  # tag case and whitespace are forgiven
    "<answer>7 * 2 + (5 - 3)</answer>",  # all four numbers, each once
    "<answer>(7 * 5 - 3) / 2</answer>",  # a fraction along the way is fine: 32 / 2
    "<answer>7 × 2 + 5 − 3</answer>",  # unicode × and − are read as * and -
])
def test_correct_answers_score_one(completion: str) -> None:
    assert TASK.score(ITEM, completion) == 1.0


@pytest.mark.parametrize("completion", [
    "<answer>3 + 5 + 2</answer>",  # 10, wrong target
    "<answer>(3 + 5) * 2 = 17</answer>",  # right expression, wrong claimed result
    "<answer>(3 + 5) * 2 = 16 = 16</answer>",
    "<answer>16 = (3 + 5) * 2</answer>",  # only "expression = target" is read
    "<answer>(3 + 3) * 2 + 2 + 2</answer>",  # numbers reused
    "<answer>(3 + 5) * 2 * 7 / 7</answer>",  # 7 twice
    "<answer>8 * 2</answer>",  # 8 is not in the list
    "<answer>16</answer>",  # the target is not a given number
    "<answer>7 / 3 * 7</answer>",  # fractional result
    "(3 + 5) * 2",  # no tag and not lenient
    "<answer>(3 + 5) * 2",  # unclosed tag
    "<answer></answer>",
    "",
])
def test_wrong_answers_score_zero(completion: str) -> None:
    assert TASK.score(ITEM, completion) == 0.0


def test_fractional_intermediates_that_hit_the_target_exactly() -> None:
    item = Item(id="f", question="", answer="", meta={"numbers": [5, 5, 5, 1], "target": 24})
    assert TASK.score(item, "<answer>5 * (5 - 1 / 5)</answer>") == 1.0  # 1/5 along the way, 24 exactly
    assert TASK.score(item, "<answer>5 * (5 - 1 / 5) = 24</answer>") == 1.0
    assert TASK.score(item, "<answer>5 * (5 - 1 / 5 / 5)</answer>") == 0.0  # 24.8


def test_an_unclosed_later_attempt_leaves_the_last_complete_answer() -> None:
    assert TASK.score(ITEM, "<answer>(3 + 5) * 2</answer> Let me check: <answer>3 + 5") == 1.0


HOSTILE = [
    "__import__('os').system('echo pwned')",
    "exec('1')",
    "9**9**9",
    "9**9**9**9**9",
    "2 ** 4",
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 17 + "3 + 5" + ")" * 17 + " * 2",  # valid but deeper than the bound
    "(((3 + 5) * 2)",  # unbalanced
    "(3 + 5)) * (2",
    "(" * 15 + "3" + ")" * 15 + "+ 5 * 2" * 2000,
    "1" * 100_000,
    "9" * 200,  # a huge literal within the length bound
    "99999999 * 99999999 * 99999999 * 99999999",  # intermediates beyond the magnitude bound
    "３ + ５ * ２",  # fullwidth digits
    "٣ + ٥ * ٢",  # Arabic-Indic digits
    "3 + 5; import os",
    "[3, 5, 2]",
    "lambda: 3",
    "(3 + 5) * 2 if True else 0",
    "10 / (5 - 5)",
    "(3 + 5) * 2 + 7 / (7 - 7)",
    "3 . 5",
    "2.0 * 8",
    "1e3",
    "0x10",
    "1_6",
    "03 + 13",
    "-3 + 19",  # unary minus is not one of the four operations
    "+16",
    "None",
    "True * 16",
    "\x00\x00",
    "   ",
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_hostile_answers_score_zero_fast(answer: str) -> None:
    item = Item(id="h", question="", answer="", meta={"numbers": [3, 5, 2, 7, 16, 19], "target": 16})
    lenient = build_task("countdown", {"num_numbers": 6, "lenient": True})
    start = time.perf_counter()
    assert evaluate(answer) is None
    for task in (TASK, lenient):
        assert task.score(item, f"<answer>{answer}</answer>") == 0.0
        assert task.score(item, f"Thinking...\n<answer>{answer} = 16</answer>") == 0.0
    assert TASK.score(item, answer) == 0.0
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize("text", [None, 16, b"<answer>3</answer>", ["(3 + 5) * 2"]])
def test_non_strings_are_refused(text: object) -> None:
    assert evaluate(text) is None
    assert TASK.score(ITEM, text) == 0.0  # type: ignore[arg-type]


def test_huge_completions_are_bounded() -> None:
    for text in ["<answer>" * 200_000 + "(3 + 5) * 2</answer>", "(" * 1_000_000, "< answer " * 100_000,
                 "1 + " * 500_000 + "1"]:
        start = time.perf_counter()
        TASK.score(ITEM, text)
        build_task("countdown", {"lenient": True}).score(ITEM, text)
        assert time.perf_counter() - start < 0.1


def test_evaluate_is_exact() -> None:
    assert evaluate("(7 * 5 - 3) / 2").value == 16
    assert evaluate("1 / 3 * 3").value == 1
    assert evaluate("((3))").numbers == (3,)
    assert uses_at_most_once((3, 5), [5, 3, 3]) and not uses_at_most_once((3, 3), [3, 5])


def test_lenient_grades_the_last_equation() -> None:
    lenient = build_task("countdown", {"num_numbers": 4, "lenient": True})
    assert lenient.score(ITEM, "First 3 + 5 = 8. So the equation is (3 + 5) * 2 = 16.") == 1.0
    assert lenient.score(ITEM, "The equation is 3 + 5 + 2 = 10.") == 0.0
    assert lenient.score(ITEM, "The answer is 16.") == 0.0
    assert lenient.score(ITEM, "<answer>3 + 5</answer> and (3 + 5) * 2") == 0.0  # a tag always wins


def test_tag_answer_adds_tags_only_for_lenient_tasks() -> None:
    lenient = build_task("countdown", {"num_numbers": 4, "lenient": True})
    text = "So the equation is (3 + 5) * 2 = 16."
    tagged = lenient.tag_answer(text)
    assert tagged is not None and tagged.startswith(text) and tagged.endswith("</answer>")
    assert TASK.score(ITEM, tagged) == 1.0  # a strict grader accepts the repaired text
    assert lenient.tag_answer("<answer>(3 + 5) * 2</answer>") == "<answer>(3 + 5) * 2</answer>"
    assert lenient.tag_answer("No idea.") is None
    assert TASK.tag_answer(text) is None  # strict tasks never invent an answer
