"""Countdown: generation properties and the safe checker against correct, wrong and hostile answers."""
from __future__ import annotations

import time

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.tasks.safe_arith import evaluate
from skillexp.utils.schema import ConfigError

SMALL = {"num_train": 50, "num_rl": 20, "num_val": 10, "num_test": 30}


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_items_are_deterministic_solvable_and_disjoint(n: int) -> None:
    task = build_task("countdown", {"num_numbers": n, **SMALL})
    again = build_task("countdown", {"num_numbers": n, **SMALL})
    splits = {s: task.items(s) for s in ("train", "rl", "val", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 50, "rl": 20, "val": 10, "test": 30}
    assert [i.question for i in splits["test"]] == [i.question for i in again.items("test")]
    keys = [(tuple(sorted(i.meta["numbers"])), i.meta["target"]) for v in splits.values() for i in v]
    assert len(keys) == len(set(keys)), "splits overlap or repeat a problem"
    for item in splits["test"]:
        assert len(item.meta["numbers"]) == n
        assert task.score(item, task.reference_solution(item)) == 1.0


def test_growing_train_keeps_the_test_set() -> None:
    a = build_task("countdown", {**SMALL})
    b = build_task("countdown", {**SMALL, "num_train": 500})
    assert [i.question for i in a.items("test")] == [i.question for i in b.items("test")]


def test_data_seed_changes_items() -> None:
    a = build_task("countdown", {**SMALL})
    b = build_task("countdown", {**SMALL, "data_seed": 7})
    assert [i.question for i in a.items("test")] != [i.question for i in b.items("test")]


ITEM = Item(id="x", question="", answer="(3 + 5) * 2", meta={"numbers": [3, 5, 2, 7], "target": 16})
TASK = build_task("countdown", {"num_numbers": 4})


@pytest.mark.parametrize("completion", [
    "<answer>(3 + 5) * 2</answer>",
    "<answer>\n  (3+5)*2 = 16\n</answer>",
    "Let me try 3 + 5 = 8, then 8 * 2 = 16.\n<answer>(3 + 5) * 2</answer>",
    "<answer>wrong</answer> then <answer>2 * (5 + 3)</answer>",  # the last answer counts
    "<answer>7 * 2 + (5 - 3)</answer>",  # all four numbers, each once
    "<answer>(7 * 5 - 3) / 2</answer>",  # fractions along the way are fine when the result is exact
    "<answer>7 × 2 + 5 − 3</answer>",  # unicode × and − are read as * and -
])
def test_correct_answers_score_one(completion: str) -> None:
    assert TASK.score(ITEM, completion) == 1.0


@pytest.mark.parametrize("completion", [
    "<answer>3 + 5 + 2</answer>",  # 10, wrong target
    "<answer>(3 + 5) * 2 = 17</answer>",  # right expression, wrong claimed target
    "<answer>(3 + 3) * 2 + 2 + 2</answer>",  # numbers reused
    "<answer>8 * 2</answer>",  # 8 is not in the list
    "<answer>16</answer>",  # no arithmetic from the numbers
    "(3 + 5) * 2",  # no tag and not lenient
    "<answer>(3 + 5) * 2",  # unclosed tag
    "<answer></answer>",
    "",
])
def test_wrong_answers_score_zero(completion: str) -> None:
    assert TASK.score(ITEM, completion) == 0.0


HOSTILE = [
    "__import__('os').system('echo pwned')",
    "9**9**9",
    "9**9**9**9**9",
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 15 + "3" + ")" * 15 + "+ 5 * 2" * 2000,
    "1" * 100_000,
    "３ + ５",  # fullwidth digits
    "٣ + ٥",  # Arabic-Indic digits
    "3 + 5; import os",
    "[3, 5, 2]",
    "lambda: 3",
    "(3 + 5) * 2 if True else 0",
    "10 / (5 - 5)",
    "99999999999999999999999999 * 99999999999999999999999999",
    "3 . 5",
    "2.0 * 8",
    "-3 + 19",
    "\x00\x00",
]


@pytest.mark.parametrize("answer", HOSTILE)
def test_hostile_answers_score_zero_fast(answer: str) -> None:
    start = time.perf_counter()
    assert TASK.score(ITEM, f"<answer>{answer}</answer>") == 0.0
    assert TASK.score(ITEM, answer) == 0.0
    assert time.perf_counter() - start < 0.1


def test_huge_completion_is_bounded() -> None:
    text = "<answer>" * 200_000 + "(3 + 5) * 2</answer>"
    start = time.perf_counter()
    TASK.score(ITEM, text)
    assert time.perf_counter() - start < 0.1


def test_evaluate_is_exact() -> None:
    assert evaluate("(7 * 5 - 3) / 2").value == 16
    assert evaluate("1 / 3 * 3").value == 1
    assert evaluate("2 ** 3") is None


def test_lenient_grades_the_last_equation() -> None:
    lenient = build_task("countdown", {"num_numbers": 4, "lenient": True})
    assert lenient.score(ITEM, "First 3 + 5 = 8. So the equation is (3 + 5) * 2 = 16.") == 1.0
    assert lenient.score(ITEM, "The equation is 3 + 5 + 2 = 10.") == 0.0
    assert lenient.score(ITEM, "<answer>3 + 5</answer> and (3 + 5) * 2") == 0.0  # a tag always wins


def test_bad_params_fail_with_the_key() -> None:
    with pytest.raises(ConfigError, match="Unknown config key 'task.num_numbrs'.*num_numbers"):
        build_task("countdown", {"num_numbrs": 4})
    with pytest.raises(ConfigError, match="num_numbers must be in"):
        build_task("countdown", {"num_numbers": 1})
    with pytest.raises(ConfigError, match="choose one of \\['countdown', 'math', 'multiplication'\\]"):
        build_task("chess", {})
