"""Multiplication and math: references score 1, wrong answers 0, sources load offline, pathological math input
is bounded."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import SPLITS, Item
from skillexp.tasks.scoring import ScorePool

SMALL = {"num_train": 20, "num_rl": 10, "num_val": 10, "num_test": 20}


@pytest.mark.parametrize("digits", [1, 2, 3, 4, 5])
def test_multiplication_items_and_scores(digits: int) -> None:
    task = build_task("multiplication", {"digits": digits, **SMALL})
    pairs = [(i.meta["a"], i.meta["b"]) for s in SPLITS for i in task.items(s)]
    assert len(pairs) == len(set(pairs)) == 60
    assert all(len(str(a)) == len(str(b)) == digits for a, b in pairs)
    for item in task.items("test"):
        assert item.answer == str(item.meta["a"] * item.meta["b"])
        assert task.score(item, task.reference_solution(item)) == 1.0
        assert task.score(item, f"<answer>{int(item.answer) + 1}</answer>") == 0.0
    assert [i.question for i in task.items("test")] == [
        i.question for i in build_task("multiplication", {"digits": digits, **SMALL}).items("test")]


def test_multiplication_answer_formats() -> None:
    item = Item(id="m", question="What is 1234 x 5678?", answer="7006652", meta={"a": 1234, "b": 5678})
    task = build_task("multiplication", {"digits": 4})
    for good in ["7006652", "7,006,652", " 7006652. ", "\n7,006,652\n"]:
        assert task.score(item, f"The product is:\n<answer>{good}</answer>") == 1.0, good
    for bad in ["7 006 652", "70,06,652", "7006652 apples", "1234 x 5678 = 7006652", "7006652.0", "٧٠٠٦٦٥٢",
                "７００６６５２", "07006652", "-7006652", "", "9" * 5000]:
        assert task.score(item, f"<answer>{bad}</answer>") == 0.0, bad
    assert task.score(item, "The product is 7,006,652.") == 0.0  # no tag, not lenient
    lenient = build_task("multiplication", {"digits": 4, "lenient": True})
    assert lenient.score(item, "The product is 7,006,652.") == 1.0
    assert lenient.score(item, "1234 x 5678 = 7006652, no wait, 7006653") == 0.0


def test_one_digit_splits_shrink_instead_of_repeating() -> None:
    task = build_task("multiplication", {"digits": 1})
    pairs = [(i.meta["a"], i.meta["b"]) for s in SPLITS for i in task.items(s)]
    assert len(pairs) == len(set(pairs)) == 81


def test_math_shipped_set_references_and_splits() -> None:
    task = build_task("math", {})
    splits = {s: task.items(s) for s in SPLITS}
    assert {s: len(v) for s, v in splits.items()} == {"test": 100, "val": 50, "rl": 100, "train": 150}
    ids = [i.id for v in splits.values() for i in v]
    assert len(ids) == len(set(ids)) == 400
    assert {i.meta["subject"] for i in splits["test"]} >= {"Algebra", "Prealgebra", "Number Theory"}
    assert all(isinstance(i.meta["level"], int) for i in splits["test"])
    test = splits["test"]
    with ScorePool(workers=2) as pool:
        refs = pool.score(task, test, [task.reference_solution(i) for i in test])
        wrong = pool.score(task, test, ["<answer>1234567</answer>"] * len(test))
        boxed = build_task("math", {"answer_format": "boxed"})
        boxed_refs = pool.score(boxed, test, [boxed.reference_solution(i) for i in test])
    assert refs == [1.0] * len(test) and boxed_refs == [1.0] * len(test)
    assert sum(wrong) == 0


@pytest.mark.parametrize("gold, answer, expected", [
    ("\\frac{1}{2}", "0.5", 1.0), ("\\frac{1}{2}", "1/2", 1.0), ("3\\sqrt{2}", "\\sqrt{18}", 1.0),
    ("-2", "$-2$", 1.0), ("5", "x = 5", 1.0), ("5", "6", 0.0), ("5", "", 0.0), ("5", "five-ish?", 0.0),
])
def test_math_verify_equivalence(gold: str, answer: str, expected: float) -> None:
    task = build_task("math", {})
    assert task.score(Item(id="q", question="", answer=gold), f"<answer>{answer}</answer>") == expected


def test_math_extraction_modes() -> None:
    item = Item(id="q", question="", answer="7")
    tag, boxed = build_task("math", {}), build_task("math", {"answer_format": "boxed"})
    lenient = build_task("math", {"lenient": True})
    assert tag.score(item, "so \\boxed{7}") == 0.0 and lenient.score(item, "so \\boxed{7}") == 1.0
    assert boxed.score(item, "\\boxed{3} no wait \\boxed{7}") == 1.0
    assert boxed.score(item, "<answer>7</answer>") == 0.0
    assert lenient.score(item, "<answer>3</answer> \\boxed{7}") == 0.0  # the tag wins


def test_math_local_jsonl_with_custom_fields_and_split_column(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [{"q": f"What is {i} + {i}?", "sol": f"Double it: \\boxed{{{2 * i}}}.",
             "split": "test" if i < 5 else "train"} for i in range(20)]
    rows.append(dict(rows[0]))  # a duplicate question is kept once
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"path": str(path), "question_field": "q", "answer_field": "sol", "subject_field": None,
              "level_field": None, "split_field": "split", "answer_format": "boxed", "num_train": 10}
    task = build_task("math", params)
    assert len(task.items("test")) == 5 and len(task.items("train")) == 10 and not task.items("val")
    item = task.items("test")[0]
    assert item.answer == str(int(item.question.split()[2]) * 2)  # the gold is the solution's last \boxed{}
    assert task.score(item, f"so \\boxed{{{item.answer}}}") == 1.0
    with pytest.raises(ValueError, match=r"mine.jsonl:1: the row has no 'problem' field .*task.question_field"):
        build_task("math", {"path": str(path)}).items("test")
    with pytest.raises(ValueError, match="none of"):
        build_task("math", {**params, "split_field": "q"}).items("test")


def test_math_local_parquet_split_by_hash(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": f"What is {i} * 3?", "answer": str(3 * i), "subject": "Arithmetic", "level": 1}
            for i in range(30)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "set.parquet")
    pq.write_table(pa.Table.from_pylist(rows[::-1]), tmp_path / "reversed.parquet")
    sizes = {"num_test": 10, "num_val": 5, "num_rl": 5}
    task = build_task("math", {"path": str(tmp_path / "set.parquet"), **sizes})
    other = build_task("math", {"path": str(tmp_path / "reversed.parquet"), **sizes})
    assert [len(task.items(s)) for s in ("test", "val", "rl", "train")] == [10, 5, 5, 10]
    assert [i.question for i in task.items("test")] == [i.question for i in other.items("test")]
    assert all(task.score(i, task.reference_solution(i)) == 1.0 for i in task.items("test"))
    with pytest.raises(FileNotFoundError):
        build_task("math", {"path": str(tmp_path / "missing.jsonl")}).items("test")


def test_math_refuses_threads() -> None:
    task, errors = build_task("math", {}), []

    def run() -> None:
        try:
            task.score(Item(id="q", question="", answer="5"), "<answer>5</answer>")
        except RuntimeError as e:
            errors.append(str(e))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors and "ScorePool" in errors[0]


PATHOLOGICAL = [
    "\\frac{" * 2000 + "1" + "}" * 2000,
    "\\frac{" * 11 + "1" + "}{2}" * 11,  # under the nesting bound: math-verify's timeout has to stop it
    "9^{9^{9^{9}}}",
    "9^{9^{9^{9^{9}}}}",
    "2^{10^{10}}",
    "10^{10^{10}}!",
    "x" * 100_000,
    "(" * 50_000,
    "\\sqrt{" * 500 + "2" + "}" * 500,
    "\\left(" * 30 + "1" + "\\right)" * 30,
]


def test_math_pathological_inputs_score_zero_and_finish() -> None:
    task = build_task("math", {"parsing_timeout_s": 1, "verify_timeout_s": 1})
    boxed = build_task("math", {"answer_format": "boxed", "parsing_timeout_s": 1, "verify_timeout_s": 1})
    item = Item(id="q", question="", answer="5")
    start = time.perf_counter()
    with ScorePool(workers=2, timeout_s=5, chunk_size=1) as pool:
        tagged = pool.score(task, [item] * len(PATHOLOGICAL), [f"<answer>{p}</answer>" for p in PATHOLOGICAL])
        boxed_scores = pool.score(boxed, [item] * 3, [f"\\boxed{{{p}}}" for p in PATHOLOGICAL[2:5]])
    assert tagged == [0.0] * len(PATHOLOGICAL) and boxed_scores == [0.0] * 3
    assert time.perf_counter() - start < 25


def _math_rows(path: Path, questions: range, solution: bool = True) -> Path:
    path.write_text("".join(json.dumps({"problem": f"What is {i} + {i}?", "level": "Level 1", "type": "Algebra",
                                        "solution": f"Add: {i} + {i} = $\\boxed{{{2 * i}}}$." if solution else "",
                                        "answer": str(2 * i)}) + "\n" for i in questions))
    return path


def test_math_splits_from_other_tables_as_the_stat_recipe_reads_math(tmp_path: Path) -> None:
    """STAT: val/test cut from MATH's test split, train and rl both read whole from MATH's train split (GRPO may see
    SFT's questions), each table read once, its file among the task's data files."""
    test, train = _math_rows(tmp_path / "test.jsonl", range(0, 50)), _math_rows(tmp_path / "train.jsonl", range(100, 130))
    task = build_task("math", {"path": str(test), "num_test": 40, "num_val": 10, "num_rl": -1, "num_train": 20,
                               "splits_from": {"train": {"path": str(train)}, "rl": {"path": str(train)}}})
    q = {s: {it.question for it in task.items(s)} for s in SPLITS}
    assert (len(q["test"]), len(q["val"]), len(q["rl"]), len(q["train"])) == (40, 10, 30, 20)
    assert not q["test"] & q["val"] and q["train"] <= q["rl"]  # train's first 20 of the 30 rl questions
    assert all(int(x.split()[2]) >= 100 for x in q["rl"]) and all(int(x.split()[2]) < 50 for x in q["test"] | q["val"])
    assert task.data_files() == [test, train] and [s.path for s in task.sources()] == [str(test), str(train)]
    with pytest.raises(Exception, match="splits_from.dev: not a split"):
        build_task("math", {"splits_from": {"dev": {"path": str(train)}}})


@pytest.mark.parametrize("answer_format", ["boxed", "tag"])
def test_math_trains_on_worked_solutions_when_a_solution_field_is_named(tmp_path: Path, answer_format: str) -> None:
    """method=sft on STAT's MATH-Train: the worked solution, ending in the answer format, scoring 1 itself."""
    path = _math_rows(tmp_path / "m.jsonl", range(1, 9))
    task = build_task("math", {"path": str(path), "num_test": -1, "num_val": 0, "num_rl": 0, "num_train": 0,
                               "solution_field": "solution", "answer_format": answer_format})
    item = task.items("test")[0]
    ref = task.reference_solution(item)
    assert ref.startswith("Add: ") and task.score(item, ref) == 1.0
    assert ref.endswith("$." if answer_format == "boxed" else f"<answer>{item.answer}</answer>")
    bare = build_task("math", {"path": str(path), "num_test": -1, "num_val": 0, "num_rl": 0, "num_train": 0,
                               "answer_format": answer_format})
    assert not bare.reference_solution(bare.items("test")[0]).startswith("Add")
