"""Multiple choice (CommonsenseQA, GPQA): rows read and checked, GPQA's options shuffled by the data seed, one-letter
grading with its accepted and refused forms, hostile answers bounded, every reference solution scoring 1."""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from skillexp.tasks.base import SPLITS, Item
from skillexp.tasks.multiple_choice import MultipleChoiceConfig, MultipleChoiceTask, read_letter
from skillexp.tasks.sources import MissingData, prepared_file
from skillexp.utils.schema import ConfigError, from_dict

LABELS = ["A", "B", "C", "D", "E"]
CSQA = [
    {"id": "q1", "question": "Where would you put money you want to keep safe?", "question_concept": "money",
     "choices": {"label": LABELS, "text": ["floor", "bank", "pocket", "street", "cloud"]}, "answerKey": "B"},
    {"id": "q2", "question": "What do people use to cut paper?",
     "choices": {"label": LABELS, "text": ["spoon", "glue", "scissors", "tape", "water"]}, "answerKey": "C"},
    {"id": "q3", "question": "Where do fish live?",
     "choices": {"label": LABELS, "text": ["tree", "desert", "sky", "water", "car"]}, "answerKey": "D"},
    {"id": "q4", "question": "What is frozen water called?",
     "choices": {"label": LABELS, "text": ["ice", "steam", "sand", "mud", "oil"]}, "answerKey": "A"},
]
GPQA = [{"Question": f"Question {i}:\nwhich value is right for case {i}?", "Correct Answer": f"right {i}",
         "Incorrect Answer 1": f"wrong {i}a", "Incorrect Answer 2": f"wrong {i}b", "Incorrect Answer 3": f"wrong {i}c"}
        for i in range(12)]
BANK = Item("m", "Where would you put money?\n\nA. floor\nB. bank\nC. pocket\nD. street\nE. cloud", "B",
            {"labels": LABELS, "choices": ["floor", "bank", "pocket", "street", "cloud"]})


def make(**params: Any) -> MultipleChoiceTask:
    return MultipleChoiceTask(from_dict(MultipleChoiceConfig, params, "task"), "mc")


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_commonsense_qa_items_and_references(tmp_path: Path) -> None:
    task = make(path=str(write(tmp_path / "csqa.jsonl", CSQA)))
    task.check_source()
    items = task.items("test")
    assert len(items) == 4 and not any(task.items(s) for s in SPLITS if s != "test")
    money = next(i for i in items if "money" in i.question)
    assert money.question == CSQA[0]["question"] + "\n\nA. floor\nB. bank\nC. pocket\nD. street\nE. cloud"
    assert money.answer == "B" and money.meta["choices"][1] == "bank"
    assert task.reference_solution(money) == "The correct choice is B: bank\n<answer>B</answer>"
    for item in items:
        assert task.score(item, task.reference_solution(item)) == 1.0
        wrong = next(x for x in LABELS if x != item.answer)
        assert task.score(item, f"<answer>{wrong}</answer>") == 0.0
    assert "letter of the correct choice" in task.messages(money)[-1]["content"]
    again = pickle.loads(pickle.dumps(make(path=str(tmp_path / "csqa.jsonl"), lenient=True)))  # to scoring workers
    assert again.score(money, "The answer is B.") == 1.0 and again.items("test") == items
    assert task.data_files() == [tmp_path / "csqa.jsonl"]


def test_the_hub_default_reads_its_prepared_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(tmp_path))
    task = make()
    file = tmp_path / "tau__commonsense_qa__default__validation.jsonl"
    assert task.data_files() == [file]
    with pytest.raises(MissingData, match="skillexp data prepare"):
        task.check_source()
    write(prepared_file("tau/commonsense_qa", None, "validation"), CSQA)
    task.check_source()
    assert sorted(i.answer for i in task.items("test")) == ["A", "B", "C", "D"]


def test_gpqa_options_are_shuffled_by_the_data_seed(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(GPQA), tmp_path / "gpqa.parquet")
    path = str(write(tmp_path / "gpqa.jsonl", GPQA[::-1]))
    task = make(path=path, format="gpqa")
    items = task.items("test")
    assert len(items) == 12
    for item in items:
        n = item.question.split()[1].rstrip(":")
        assert item.question.startswith(f"Question {n}:\nwhich value")  # the question's own line breaks kept
        assert item.meta["labels"] == ["A", "B", "C", "D"]
        assert item.meta["choices"][item.meta["labels"].index(item.answer)] == f"right {n}"
        assert sorted(item.meta["choices"]) == sorted([f"right {n}", f"wrong {n}a", f"wrong {n}b", f"wrong {n}c"])
        assert task.score(item, task.reference_solution(item)) == 1.0
    assert len({i.answer for i in items}) > 1  # the correct option does not always come first
    from_parquet = make(path=str(tmp_path / "gpqa.parquet"), format="gpqa").items("test")
    assert [(i.id, i.question, i.answer) for i in from_parquet] == [(i.id, i.question, i.answer) for i in items]
    reseeded = make(path=path, format="gpqa", data_seed=7).items("test")
    assert [i.id for i in reseeded] == [i.id for i in items]  # the split does not depend on the shuffle
    assert [i.answer for i in reseeded] != [i.answer for i in items]
    cut = make(path=path, format="gpqa", num_test=5, num_val=2, num_rl=0, num_train=-1)
    assert [len(cut.items(s)) for s in SPLITS] == [5, 0, 2, 5]  # SPLITS is train, rl, val, test
    assert [i.id for i in cut.items("test")] == [i.id for i in items[:5]]


@pytest.mark.parametrize("fmt, row, message", [
    ("commonsense_qa", {**CSQA[0], "answerKey": ""}, r"bad.jsonl:2: answerKey '' is not one .*validation"),
    ("commonsense_qa", {**CSQA[0], "choices": {"label": ["A", "B"], "text": ["x"]}}, r"bad.jsonl:2: not a Common"),
    ("commonsense_qa", {**CSQA[0], "choices": {"label": ["A", "A"], "text": ["x", "y"]}}, r"bad.jsonl:2: not a Co"),
    ("commonsense_qa", {**CSQA[0], "choices": {"label": ["1", "2"], "text": ["x", "y"]}}, r"bad.jsonl:2: not a Co"),
    ("commonsense_qa", {"question": "Q?"}, r"bad.jsonl:2: not a CommonsenseQA row"),
    ("gpqa", {k: v for k, v in GPQA[0].items() if k != "Incorrect Answer 3"}, r"bad.jsonl:2: .*'Incorrect Answer 3'"),
    ("gpqa", {**GPQA[0], "Incorrect Answer 2": "  "}, r"bad.jsonl:2: .* needs text in \['Incorrect Answer 2'\]"),
    ("gpqa", {**GPQA[0], "Incorrect Answer 1": "right 0"}, r"bad.jsonl:2: the correct answer is also given as a wrong"),
])
def test_malformed_rows_fail_at_read_time(tmp_path: Path, fmt: str, row: dict, message: str) -> None:
    good = CSQA[1] if fmt == "commonsense_qa" else GPQA[1]
    path = write(tmp_path / "bad.jsonl", [good, row])
    with pytest.raises(ValueError, match=message):
        make(path=str(path), format=fmt).check_source()


def test_the_format_is_checked_with_the_config() -> None:
    with pytest.raises(ConfigError, match="commonsense_qa"):
        from_dict(MultipleChoiceConfig, {"format": "mmlu"}, "task")


@pytest.mark.parametrize("answer", [
    "B", "b", "(B)", "( B )", "[B]", "B.", "B)", "B:", " B ", "**B**", "\\boxed{B}", "\\text{B}", "B) bank",
    "B. Bank.", "(B) bank", "B bank", "B)  BANK", "\nB\n",
])
def test_accepted_letters(answer: str) -> None:
    assert make().score(BANK, f"I think so.\n<answer>{answer}</answer>") == 1.0, answer


@pytest.mark.parametrize("answer", [
    "A", "C", "bank", "Bank", "B, C", "B or C", "B and C", "BC", "B/C", "(B)(C)", "B) pocket", "B) no wait C",
    "F", "Z", "Ｂ", "Β", "В", "", "()", "answer: B", "The answer is B", "B) " + "bank " * 60,
    "\\boxed{\\boxed{B}}", "B!", "-B", "B..",
])
def test_refused_letters(answer: str) -> None:
    assert make().score(BANK, f"<answer>{answer}</answer>") == 0.0, answer


def test_a_letter_outside_the_items_choices_is_refused() -> None:
    four = Item("g", "Q", "D", {"labels": ["A", "B", "C", "D"], "choices": ["w", "x", "y", "z"]})
    task = make(format="gpqa")
    assert task.score(four, "<answer>D</answer>") == 1.0
    assert task.score(Item("g", "Q", "E", {"labels": ["A", "B", "C", "D"], "choices": ["w", "x", "y", "z"]}),
                      "<answer>E</answer>") == 0.0
    assert read_letter("E", ["A", "B", "C", "D"], ["w", "x", "y", "z"]) is None
    assert read_letter("d) Z", ["A", "B", "C", "D"], ["w", "x", "y", "z"]) == "D"


def test_lenient_fallbacks() -> None:
    strict, lenient = make(), make(lenient=True)
    assert strict.score(BANK, "The answer is B.") == 0.0
    for text in ["The answer is B.", "So the answer is (B), since banks keep money.", "Answer: B",
                 "The answer is: **B**", "A floor is unsafe. I'd go with B", "Between C and B, I pick B."]:
        assert lenient.score(BANK, text) == 1.0, text
    for text in ["The answer is C. Banks are B-grade.", "I think so", "Answer is b", "B is wrong, so C"]:
        assert lenient.score(BANK, text) == 0.0, text
    assert lenient.score(BANK, "<answer>C</answer> The answer is B") == 0.0  # a tag always wins
    gpqa = make(format="gpqa", lenient=True)
    assert gpqa._lenient_extract("Option E is out; the right one is C or D? D") == "D"
    assert gpqa._lenient_extract("E") is None  # not one of GPQA's four letters
    tagged = lenient.tag_answer("The answer is B.")
    assert tagged == "The answer is B.\n<answer>B</answer>" and strict.score(BANK, tagged) == 1.0


def test_with_gold_reads_a_letter() -> None:
    task = make()
    assert task.with_gold(BANK, "(c)").answer == "C"
    assert task.with_gold(BANK, "B) bank").answer == "B"
    assert task.with_gold(BANK, "pocket") is None and task.with_gold(BANK, "F") is None


HOSTILE = [
    "<answer>" * 100_000 + "B",
    "<answer><answer>C</answer>",
    "<answer>B</answer" * 50_000,
    "<answer>" + "B" * 1_000_000 + "</answer>",
    "<answer>" + "B " * 400 + "</answer>",
    "<answer>(" * 1000 + "B" + ")" * 1000 + "</answer>",
    "<answer>" + "\\boxed{" * 300 + "B" + "}" * 300 + "</answer>",
    "<answer>B) " + "bank" * 100 + "</answer>",
    "<answer>１２</answer>",
    "<answer>١٢٣</answer>",
    "<answer>1e999999</answer>",
    "<answer>" + "9" * 1_000_000 + "</answer>",
    "x" * 10_000_000,
    "answer is " * 1_000_000,
    "the answer is (" * 500_000,
    "a " * 5_000_000,
    "\x00" * 1_000,
]


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_completions_score_zero_fast(completion: str) -> None:
    strict, lenient = make(), make(lenient=True)
    start = time.perf_counter()
    assert strict.score(BANK, completion) == 0.0
    if "B" not in completion[-2_000:]:  # the lenient fallback may legitimately find a standalone B in the tail
        assert lenient.score(BANK, completion) == 0.0
    else:
        lenient.score(BANK, completion)
    assert time.perf_counter() - start < 0.2


def test_a_huge_completion_still_finds_its_final_answer() -> None:
    start = time.perf_counter()
    assert make().score(BANK, "x" * 10_000_000 + "<answer>(B)</answer>") == 1.0
    assert time.perf_counter() - start < 0.2


@pytest.mark.parametrize("value", [None, 2, b"B", ["B"]])
def test_non_strings_are_refused(value: object) -> None:
    assert not make().check(BANK, value)  # type: ignore[arg-type]
    assert read_letter(value, LABELS, BANK.meta["choices"]) is None  # type: ignore[arg-type]
