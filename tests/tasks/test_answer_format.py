"""The prompt and the grader come from one definition (tasks/answer.py): every task, in every answer format it
offers, asks for its answer where its grader reads it. Posed under every prompt variant, the words name that place
and not the other; an answer written as the prompt asks scores 1, the same answer written the other way is found
nowhere (no lenient fallback). STAT's math asked for "\\boxed{} ... in the <answer> tags" and graded only the box."""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.answer import ANSWER_FORMATS
from skillexp.tasks.base import SPLITS, Task
from skillexp.tasks.prompts import PROMPTS
from tests.tasks import test_gsm8k, test_multiple_choice

MARKERS = {"tag": "<answer>(your answer)</answer>", "boxed": "\\boxed{}"}


def _tasks(tmp_path: Path) -> list[Task]:
    gsm8k = test_gsm8k.write(tmp_path / "gsm8k.jsonl", test_gsm8k.ROWS)
    csqa = test_multiple_choice.write(tmp_path / "csqa.jsonl", test_multiple_choice.CSQA)
    return [build_task("countdown", {}), build_task("multiplication", {}), build_task("acronym", {}),
            build_task("letter_countdown", {}), test_multiple_choice.make(path=str(csqa)),
            *(build_task("math", {"answer_format": f}) for f in ANSWER_FORMATS),
            *(test_gsm8k.make(path=str(gsm8k), answer_format=f) for f in ANSWER_FORMATS)]


def test_every_task_asks_for_its_answer_where_its_grader_reads_it(tmp_path: Path) -> None:
    seen = set()
    for task in _tasks(tmp_path):
        fmt = ANSWER_FORMATS[task.answer_format]
        other = next(f for name, f in ANSWER_FORMATS.items() if name != fmt.name)
        seen.add((type(task).__name__, fmt.name))
        item = next(it for split in SPLITS for it in task.items(split)[:1])
        for variant in PROMPTS:
            words = " ".join(m["content"] for m in task.messages(item, variant))
            assert MARKERS[fmt.name] in words, (task.name, fmt.name, variant)
            if variant != "instruction":  # its attempts carry <answer> tags whatever the final answer's place
                assert MARKERS[other.name] not in words, (task.name, fmt.name, variant)
                assert fmt.name == "tag" or "<answer>" not in words, (task.name, variant)
        reference = task.reference_solution(item)
        answer = task.extract(reference)
        assert answer is not None and task.score(item, reference) == 1.0, (task.name, reference)
        asked = f"Some reasoning first.\n{fmt.write(answer)}"
        assert task.extract(asked) == answer and task.score(item, asked) == 1.0, (task.name, asked)
        elsewhere = f"Some reasoning first.\n{other.write(answer)}"
        assert task.extract(elsewhere) is None and task.score(item, elsewhere) == 0.0, (task.name, elsewhere)
    assert {("MathTask", "boxed"), ("MathTask", "tag"), ("Gsm8kTask", "boxed"), ("Gsm8kTask", "tag")} <= seen


def test_stats_math_prompt_is_its_harness_and_the_boxed_answer_is_graded() -> None:
    """`answer_format: boxed` (experiment=stat_math's tasks) poses the question with STAT's harness instruction,
    and a model that answers as told scores; one that writes <answer> tags instead has no answer (counted by the
    eval's no_answer_rate, never mistaken for a wrong answer)."""
    task = build_task("math", {"answer_format": "boxed"})
    item = task.items("test")[0]
    assert task.messages(item) == [{"role": "user", "content": f"{item.question}\n\nPlease reason step by step, "
                                                               "and put your final answer within \\boxed{}."}]
    assert task.score(item, f"So the answer is \\boxed{{{item.answer}}}.") == 1.0
    assert task.extract(f"<answer>{item.answer}</answer>") is None


@pytest.mark.parametrize("fmt", sorted(ANSWER_FORMATS))
def test_a_format_writes_what_it_reads(fmt: str) -> None:
    f = ANSWER_FORMATS[fmt]
    for answer in ("42", "\\frac{1}{2}", "x + 1", ""):
        assert f.read(f"text {f.write('0')} more text {f.write(answer)}") == answer
