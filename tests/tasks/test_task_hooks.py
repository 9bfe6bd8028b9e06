"""The task hooks data-building methods (STAT) use instead of knowing tasks by name: `problem_key`, `with_gold`,
`read_question`, `checkable` and `skill_catalogue`, on hand-written items, for Countdown and for the defaults."""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.tasks.countdown import MAX_QUESTION_CHARS

COUNTDOWN = build_task("countdown", {"num_numbers": 3})
MULTIPLICATION = build_task("multiplication", {})
MATH = build_task("math", {})
SKILLS = Path(__file__).resolve().parents[2] / "skillexp" / "data" / "skills"
STATED = Item("s", "Using the numbers in the list [3, 7, 25], create an equation that equals 82.", "",
              {"numbers": [3, 7, 25], "target": 82})


def test_defaults_for_free_form_questions() -> None:
    item = Item("a", "  What IS\n 12 x  34?\t", "", {"numbers": [12, 34], "target": 408})
    for task in (MULTIPLICATION, MATH):
        assert task.problem_key(item) == "what is 12 x 34?"  # meta plays no part
        assert task.with_gold(item, "408") == Item("a", item.question, "408", {"numbers": [12, 34], "target": 408})
        assert task.with_gold(item, "not a number") == Item("a", item.question, "not a number", item.meta)
        assert task.read_question(item) is item
        assert not task.checkable(item)  # no gold answer: solutions can only be compared with each other
        assert task.checkable(Item("b", "What is 2 x 3?", "6"))
    assert MULTIPLICATION.skill_catalogue is None


def test_shipped_catalogues() -> None:
    assert COUNTDOWN.skill_catalogue == SKILLS / "countdown.json" and COUNTDOWN.skill_catalogue.is_file()
    assert MATH.skill_catalogue == SKILLS / "math.json" and MATH.skill_catalogue.is_file()


def test_countdown_problem_key_ignores_the_order_of_the_numbers() -> None:
    assert COUNTDOWN.problem_key(STATED) == "countdown:[3, 7, 25]:82"
    shuffled = Item("t", "Other words entirely.", "25 + 7", {"numbers": [25, 3, 7], "target": 82})
    assert COUNTDOWN.problem_key(shuffled) == COUNTDOWN.problem_key(STATED)
    assert COUNTDOWN.problem_key(Item("u", "x", "", {"numbers": [3, 7, 25], "target": 83})) != "countdown:[3, 7, 25]:82"
    assert COUNTDOWN.problem_key(Item("v", "Make  82\nfrom THREE numbers.", "", {})) == "make 82 from three numbers."


def test_countdown_with_gold_takes_the_value_of_a_valid_expression() -> None:
    gold = COUNTDOWN.with_gold(STATED, "(25 - 7) * 3")
    assert gold == Item("s", STATED.question, "(25 - 7) * 3", {"numbers": [3, 7, 25], "target": 54})
    assert COUNTDOWN.with_gold(STATED, "3 * 25 + 7 = 82").meta["target"] == 82  # a claimed result is ignored
    assert COUNTDOWN.check(gold, "3 * (25 - 7)") and not COUNTDOWN.check(gold, "3 * 25 + 7")


@pytest.mark.parametrize("answer", ["7 * 7", "3 + 4 + 5", "25 *", "__import__('os')", "", "-3 + 7"])
def test_countdown_with_gold_rejects_what_is_no_valid_expression(answer: str) -> None:
    assert COUNTDOWN.with_gold(STATED, answer) is None  # 7 twice, 4 and 5 not given, syntax, code, nothing, unary


def test_countdown_with_gold_needs_the_numbers() -> None:
    assert COUNTDOWN.with_gold(Item("w", "Make 10.", "", {"target": 10}), "2 * 5") is None


def test_countdown_question_read_back_from_free_text() -> None:
    free = Item("p", "Here is one: using the numbers in the list [3, 7, 25], create an equation that equals 82.",
                "", {"skill": "multiplication"})
    read = COUNTDOWN.read_question(free)
    assert read == Item("p", free.question, "", {"skill": "multiplication", "numbers": [3, 7, 25], "target": 82})
    assert COUNTDOWN.checkable(read) and COUNTDOWN.check(read, "3 * 25 + 7") and not COUNTDOWN.check(read, "3 * 25")
    other = COUNTDOWN.read_question(Item("q", "With [10, 2] make something equal to 5", "", {}))
    assert other.meta == {"numbers": [10, 2], "target": 5}


@pytest.mark.parametrize("question", [
    "Make eighty-two from three, seven and twenty-five.",  # no numbers in the task's wording
    "Using the list [82], create an equation that equals 82.",  # one number: not a question of this task
    "Using [1, 2, 3, 4, 5, 6, 7, 8, 9], create an equation that equals 45.",  # more numbers than any variant
])
def test_countdown_question_that_cannot_be_read_stays_as_it_is(question: str) -> None:
    item = Item("r", question, "", {})
    assert COUNTDOWN.read_question(item) == item and not COUNTDOWN.checkable(item)


def test_countdown_question_is_read_only_from_its_start() -> None:
    late = Item("l", " " * MAX_QUESTION_CHARS + "the list [3, 7, 25], create an equation that equals 82.", "", {})
    assert COUNTDOWN.read_question(late) == late
    assert COUNTDOWN.read_question(Item("h", "[" + "1," * 5000 + "] equals 3", "", {})).meta == {}


def test_countdown_question_with_its_numbers_is_not_read_again() -> None:
    stated = Item("k", "the list [1, 2], create an equation that equals 3", "", {"numbers": [4, 5], "target": 9})
    assert COUNTDOWN.read_question(stated) is stated


def test_countdown_checkable() -> None:
    assert COUNTDOWN.checkable(STATED)  # the target is the answer
    assert COUNTDOWN.checkable(Item("g", "Make 10.", "2 * 5", {}))
    assert not COUNTDOWN.checkable(Item("n", "Make 10.", "", {"numbers": [2, 5]}))
