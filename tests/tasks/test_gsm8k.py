"""GSM8K: golds read from `#### N`, exact numeric grading of the forms models write, hostile answers bounded, and
every reference solution (the dataset's worked solution) scoring 1."""
from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from skillexp.tasks.base import SPLITS, Item
from skillexp.tasks.gsm8k import Gsm8kConfig, Gsm8kTask, parse_number
from skillexp.tasks.sources import MissingData, prepared_file
from skillexp.utils.schema import from_dict

ROWS = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How "
                 "many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
               "in April and May.\n#### 72"},
    {"question": "A shop sells 1,234 pens a day for 2 days at no profit; how many pens does it sell?",
     "answer": "It sells 1,234 * 2 = <<1234*2=2468>>2,468 pens.\n#### 2,468"},
    {"question": "The temperature was 4 degrees and fell by 9 degrees. What is it now?",
     "answer": "4 - 9 = <<4-9=-5>>-5\n#### -5"},
    {"question": "A rope of 5 m is cut in two equal parts. How long is each part, in meters?",
     "answer": "5 / 2 = <<5/2=2.5>>2.5\n#### 2.5"},
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
    {"question": "What percent of 200 is 100?", "answer": "100 / 200 * 100 = <<100/200*100=50>>50\n#### 50"},
]
GOLDS = {"72", "2468", "-5", "2.5", "7", "50"}


def make(**params: Any) -> Gsm8kTask:
    return Gsm8kTask(from_dict(Gsm8kConfig, params, "task"), "gsm8k")


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def task(tmp_path: Path) -> Gsm8kTask:
    return make(path=str(write(tmp_path / "gsm8k.jsonl", ROWS)))


ITEM = Item(id="g", question="How many apples, at most half of them red, do the 3 farms grow?", answer="1234",
            meta={})


def test_items_golds_and_reference_solutions(task: Gsm8kTask, tmp_path: Path) -> None:
    task.check_source()
    items = task.items("test")
    assert len(items) == len(ROWS) and not any(task.items(s) for s in SPLITS if s != "test")
    assert {i.answer for i in items} == GOLDS
    for item in items:
        ref = task.reference_solution(item)
        assert task.score(item, ref) == 1.0 and "<<" not in ref and "####" not in ref
        assert task.score(item, "<answer>123456</answer>") == 0.0
    natalia = next(i for i in items if i.answer == "72")
    assert task.reference_solution(natalia) == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips "
                                                "altogether in April and May.\n<answer>72</answer>")
    reversed_file = write(tmp_path / "reversed.jsonl", ROWS[::-1] + ROWS[:1])  # order and a repeat play no part
    assert [i.id for i in make(path=str(reversed_file)).items("test")] == [i.id for i in items]
    assert task.data_files() == [tmp_path / "gsm8k.jsonl"]
    again = pickle.loads(pickle.dumps(task))  # as scoring workers get it: items are rebuilt, not pickled
    assert again._splits is None and again.items("test") == items


def test_split_sizes_are_cut_test_first(task: Gsm8kTask, tmp_path: Path) -> None:
    cut = make(path=str(tmp_path / "gsm8k.jsonl"), num_test=2, num_val=1, num_rl=1, num_train=-1)
    sizes = {s: len(cut.items(s)) for s in SPLITS}
    assert sizes == {"test": 2, "val": 1, "rl": 1, "train": 2}
    assert [i.id for i in cut.items("test")] == [i.id for i in task.items("test")[:2]]


def test_the_hub_default_reads_its_prepared_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(tmp_path))
    task = make()
    assert task.data_files() == [tmp_path / "openai__gsm8k__main__test.jsonl"]
    with pytest.raises(MissingData, match="skillexp data prepare"):
        task.check_source()
    write(prepared_file("openai/gsm8k", "main", "test"), ROWS)
    task.check_source()
    assert {i.answer for i in task.items("test")} == GOLDS


@pytest.mark.parametrize("answer, message", [
    ("It is 5.", r"bad.jsonl:2: the answer field must end in '#### <number>' .*no '####' line"),
    ("It is 5.\n#### five", r"bad.jsonl:2: .*found 'five'"),
    ("#### 5/2", r"bad.jsonl:2: .*found '5/2'"),
    ("#### 1e3", r"bad.jsonl:2: .*found '1e3'"),
    (7, r"bad.jsonl:2: the row has no text field 'answer' .*task.answer_field"),
])
def test_bad_rows_fail_at_read_time_naming_the_row(tmp_path: Path, answer: Any, message: str) -> None:
    path = write(tmp_path / "bad.jsonl", [ROWS[0], {"question": "Q?", "answer": answer}])
    with pytest.raises(ValueError, match=message):
        make(path=str(path)).check_source()


@pytest.mark.parametrize("answer", [
    "1234", "1,234", "1234.0", "1234.00", "$1,234", "\\$1234", "$ 1234", "1234 dollars", "1,234 apples",
    "1234.", "1234 dollars.", " 1234 ", "+1234", "\\boxed{1234}", "$1234$", "1234 miles per hour", "1234 km/h",
    "01234", "1234\n",
])
def test_accepted_forms(answer: str) -> None:
    assert make().score(ITEM, f"So the total is:\n<answer>{answer}</answer>") == 1.0, answer


@pytest.mark.parametrize("answer", [
    "1235", "1234/1", "2468/2", "1000+234", "1234 or 1235", "1234 or so", "1234 thousand", "1234 and a half",
    "x = 1234", "1234 = 1234", "12,34", "1 234", "1.234e3", "1234e0", "12340e-1", "１２３４", "١٢٣٤", "**1234**",
    "-1234", "$-1234", "1234%%", "1234..", "", "one thousand two hundred thirty-four", "1234 " + "apples " * 20,
    "1234" + "0" * 200, "1234 (or 1235)", "[1234]", "1,2,3,4", "0x4D2",
])
def test_rejected_forms(answer: str) -> None:
    assert make().score(ITEM, f"<answer>{answer}</answer>") == 0.0, answer


@pytest.mark.parametrize("answer", [
    # words that change the value, or could: only units and the question's own words may follow the number
    "1234 fewer", "1234 less", "1234 more", "1234 extra", "1234 pairs", "1234 squared", "1234 short",
    "1234 percent more", "1234 cents", "1234 grosses", "1234 scores", "1234 apiece", "1234 not", "1234 twice",
    "1234 minus one", "1234 apples fewer", "1234 red apples less", "1234 half", "1234 farms' worth", "1234 k",
    "1234 thousand apples", "1234 dozen apples",
])
def test_words_outside_the_allow_list_refuse_the_answer(answer: str) -> None:
    """Adversarial phrasing: the right number followed by a word that changes it (or that nobody vetted). The
    question's own words are allowed (it counts apples, farms) except those that change a number (`half`)."""
    assert make().score(ITEM, f"<answer>{answer}</answer>") == 0.0, answer


@pytest.mark.parametrize("answer", ["1234 apples", "1234 red apples", "1234 apples total", "1234 apples per farm",
                                    "1234 kg", "1234 dollars", "$1,234 per year", "1234 hours"])
def test_units_and_the_questions_own_words_are_allowed(answer: str) -> None:
    assert make().score(ITEM, f"<answer>{answer}</answer>") == 1.0, answer
    assert make().score(Item("h", "How many hours?", "1234"), f"<answer>{answer}</answer>") == (
        1.0 if "apple" not in answer else 0.0), answer  # apples are not this question's


def test_signs_decimals_and_percent() -> None:
    task = make()
    assert task.score(Item("n", "", "-5"), "<answer>-5</answer>") == 1.0
    assert task.score(Item("n", "", "-5"), "<answer>−5</answer>") == 1.0  # unicode minus
    assert task.score(Item("n", "", "-5"), "<answer>-$5</answer>") == 1.0
    assert task.score(Item("n", "", "-5"), "<answer>5</answer>") == 0.0
    assert task.score(Item("n", "", "2.5"), "<answer>2.50</answer>") == 1.0
    assert task.score(Item("n", "", "2.5"), "<answer>5/2</answer>") == 0.0  # fractions are refused
    assert task.score(Item("n", "", "0.1"), "<answer>.1</answer>") == 1.0
    assert task.score(Item("n", "", "0.3"), "<answer>0.30000000000000004</answer>") == 0.0  # exact, not float
    for percent in ("50%", "50 %", "50\\%", "50 percent"):  # a percentage equals the gold's bare number
        assert task.score(Item("p", "", "50"), f"<answer>{percent}</answer>") == 1.0, percent
    assert task.score(Item("p", "", "50"), "<answer>0.5</answer>") == 0.0
    assert parse_number("1,234,567.25") * 4 == 4938269


def test_lenient_takes_the_last_number() -> None:
    strict, lenient = make(), make(lenient=True)
    assert strict.score(ITEM, "The answer is 1,234.") == 0.0
    for text in ["The answer is 1,234.", "So 617 * 2 = 1234", "#### 1234", "It costs $1234.00", "total: 1234\n"]:
        assert lenient.score(ITEM, text) == 1.0, text
    for text in ["1234 apples, minus 1 = 1233", "1234 - 1", "about 12,34", "x1234", "no numbers here"]:
        assert lenient.score(ITEM, text) == 0.0, text
    assert lenient.score(ITEM, "<answer>1233</answer> but 1234") == 0.0  # a tag always wins
    tagged = lenient.tag_answer("It is 1,234.")
    assert tagged == "It is 1,234.\n<answer>1,234</answer>" and strict.score(ITEM, tagged) == 1.0
    assert strict.tag_answer("It is 1,234.") is None


def test_with_gold_reads_a_number_or_refuses() -> None:
    task = make()
    item = Item("w", "How many apples?", "", {})
    assert task.with_gold(item, "$1,234.50").answer == "1234.5"
    assert task.with_gold(item, "-7 apples").answer == "-7"
    assert task.with_gold(item, "-7 pears") is None  # not a word of the question, nor a unit
    assert task.with_gold(item, "2 + 3") is None and task.with_gold(item, "") is None
    gold = task.with_gold(item, "1,234")
    assert task.check(gold, "1234.0") and not task.check(gold, "1235")
    assert task.reference_solution(gold) == "<answer>1234</answer>"


HOSTILE = [
    "<answer>" * 100_000 + "1233",  # unclosed, nested
    "<answer><answer>1235</answer>",
    "<answer>1233</answer" * 50_000,
    "<answer>" + "9" * 1_000_000 + "</answer>",
    "<answer>" + "1" * 999 + "</answer>",
    "<answer>1e999999</answer>",
    "<answer>9" + "0" * 99 + "</answer>",
    "<answer>" + "1," * 400 + "1</answer>",
    "<answer>" + "1 " * 400 + "</answer>",
    "<answer>" + "$" * 900 + "1234</answer>",
    "<answer>" + "1234 " + "a " * 400 + "</answer>",
    "<answer>" + "-" * 900 + "1234</answer>",
    "<answer>١٢٣٤</answer>",
    "<answer>１２３４</answer>",
    "<answer>" + "\\boxed{" * 300 + "1233" + "}" * 300 + "</answer>",
    "x" * 10_000_000,
    "1" * 10_000_000,
    "1," * 5_000_000,
    "<answer>1235</answer>" + "1." * 1_000_000,
    "\x00" * 1_000,
]


@pytest.mark.parametrize("completion", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_completions_score_zero_fast(completion: str) -> None:
    """None of these holds the gold 1234 as a number of its own, so the lenient fallback must score 0 too."""
    strict, lenient = make(), make(lenient=True)
    start = time.perf_counter()
    assert strict.score(ITEM, completion) == 0.0
    assert lenient.score(ITEM, completion) == 0.0
    assert time.perf_counter() - start < 0.2


def test_a_huge_completion_still_finds_its_final_answer() -> None:
    start = time.perf_counter()
    assert make().score(ITEM, "<answer>" + "\\boxed{" * 2 + "1234" + "}" * 2 + "</answer>") == 0.0  # one wrapper
    assert make().score(ITEM, "<answer>" * 100_000 + "1234") == 0.0  # never closed
    assert make().score(ITEM, "x" * 10_000_000 + "<answer>1,234</answer>") == 1.0
    assert time.perf_counter() - start < 0.2


@pytest.mark.parametrize("value", [None, 1234, b"1234", ["1234"]])
def test_non_strings_are_refused(value: object) -> None:
    assert not make().check(ITEM, value)  # type: ignore[arg-type]
    assert parse_number(value) is None  # type: ignore[arg-type]


def test_boxed_answer_format(task: Gsm8kTask, tmp_path: Path) -> None:
    boxed = make(path=str(tmp_path / "gsm8k.jsonl"), answer_format="boxed")
    assert "\\boxed{}" in boxed.messages(ITEM)[-1]["content"]
    for item in boxed.items("test"):
        assert boxed.score(item, boxed.reference_solution(item)) == 1.0
        assert boxed.score(item, task.reference_solution(item)) == 0.0  # a tag is not read in boxed mode
    assert boxed.score(ITEM, "so \\boxed{1233} no, \\boxed{1,234}.") == 1.0
    assert boxed.score(ITEM, "\\boxed{1,234} then \\boxed{unclosed") == 0.0
    assert boxed.score(ITEM, "The total is 1234.") == 0.0
    assert make(answer_format="boxed", lenient=True).score(ITEM, "The total is 1234.") == 1.0
    start = time.perf_counter()
    for text in ["\\boxed{" * 1_000_000, "\\boxed{" + "9" * 1_000_000 + "}", "x" * 10_000_000 + "\\boxed{1e999999}"]:
        assert boxed.score(ITEM, text) == 0.0
    assert time.perf_counter() - start < 0.3


def test_a_missing_field_names_the_key_where_the_config_sets_it(tmp_path: Path) -> None:
    """An eval variant's table without the answer field: the message names that variant's key, not `task.`."""
    from skillexp.tasks import build_task

    path = write(tmp_path / "bad.jsonl", [{"question": "Q?", "solution": "#### 1"}])
    task = build_task("gsm8k", {"path": str(path)}, path="eval.variants.gsm8k")
    with pytest.raises(ValueError, match=r"its fields: \['question', 'solution'\]\); set "
                                         r"eval\.variants\.gsm8k\.answer_field to the field that holds it"):
        task.check_source()
