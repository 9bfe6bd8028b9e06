"""Multiplication and math: references score 1, wrong answers 0, pathological math input is bounded."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.scoring import ScorePool

SMALL = {"num_train": 20, "num_rl": 10, "num_val": 10, "num_test": 20}


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5])
def test_multiplication_items_and_scores(digits: int) -> None:
    task = build_task("multiplication", {"digits": digits, **SMALL})
    items = task.items("test")
    assert items and all(len(str(i.meta["a"])) == digits for i in items)
    for item in items[:5]:
        assert task.score(item, task.reference_solution(item)) == 1.0
        assert task.score(item, f"<answer>{int(item.answer) + 1}</answer>") == 0.0


def test_multiplication_answer_formats() -> None:
    task = build_task("multiplication", {"digits": 4, **SMALL})
    item = next(i for i in task.items("test") if int(i.answer) >= 1000)
    with_commas = f"{int(item.answer):,}"
    assert task.score(item, f"<answer>{with_commas}</answer>") == 1.0
    assert task.score(item, f"<answer> {item.answer}. </answer>") == 1.0
    assert task.score(item, f"<answer>{item.answer} apples</answer>") == 0.0
    assert task.score(item, f"The product is {with_commas}.") == 0.0  # no tag, not lenient
    lenient = build_task("multiplication", {"digits": 4, "lenient": True, **SMALL})
    assert lenient.score(item, f"The product is {with_commas}.") == 1.0


def test_one_digit_splits_shrink_instead_of_repeating() -> None:
    task = build_task("multiplication", {"digits": 1})
    pairs = [(i.meta["a"], i.meta["b"]) for s in ("test", "val", "rl", "train") for i in task.items(s)]
    assert len(pairs) == len(set(pairs)) == 81


def test_math_shipped_set_references_and_splits() -> None:
    task = build_task("math", {})
    test, train = task.items("test"), task.items("train")
    assert len(test) == 100 and len(train) > 100
    assert not {i.id for i in test} & {i.id for i in train}
    with ScorePool(workers=2) as pool:
        refs = pool.score(task, test, [task.reference_solution(i) for i in test])
        wrong = pool.score(task, test, ["<answer>1234567</answer>"] * len(test))
    assert refs == [1.0] * len(test)
    assert sum(wrong) == 0


def test_math_verify_equivalence() -> None:
    task = build_task("math", {})
    item = next(i for i in task.items("test") if "\\frac" in i.answer)
    with ScorePool(workers=0) as pool:  # in-process from the main thread is allowed
        num, den = item.answer.removeprefix("\\frac{").removesuffix("}").split("}{")
        assert pool.score(task, [item], [f"<answer>{num}/{den}</answer>"]) == [1.0]


def test_math_local_jsonl_with_custom_fields(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"q": f"What is {i} + {i}?", "a": str(2 * i), "split": "test" if i < 5 else "train"} for i in range(20)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = build_task("math", {"path": str(path), "question_field": "q", "answer_field": "a",
                               "split_field": "split", "answer_format": "boxed"})
    assert len(task.items("test")) == 5 and len(task.items("train")) == 15
    item = task.items("test")[0]
    assert task.score(item, f"so \\boxed{{{item.answer}}}") == 1.0
    with pytest.raises(KeyError, match="question_field"):
        build_task("math", {"path": str(path)}).items("test")


PATHOLOGICAL = [
    "\\frac{" * 2000 + "1" + "}" * 2000,
    "9^{9^{9^{9^{9}}}}",
    "x" * 100_000,
    "(" * 50_000,
    "\\sqrt{" * 500 + "2" + "}" * 500,
]


def test_math_pathological_inputs_score_zero_and_finish() -> None:
    task = build_task("math", {"parsing_timeout_s": 1, "verify_timeout_s": 1})
    item = task.items("test")[0]
    start = time.perf_counter()
    with ScorePool(workers=2, timeout_s=30) as pool:
        scores = pool.score(task, [item] * len(PATHOLOGICAL),
                            [f"<answer>{p}</answer>" for p in PATHOLOGICAL])
    assert scores == [0.0] * len(PATHOLOGICAL)
    assert time.perf_counter() - start < 30
