r"""task=openthoughts: the gold answer read from hand-written QwQ traces (the last \boxed{} after </think>, rows
without one or with differing ones left out and counted, every scan bounded), and the task built from an
OpenThoughts3-shaped table (skillexp/tasks/standins.py's stand-in, and hand-written rows in both turn shapes)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.openthoughts import (MAX_FINAL_CHARS, MAX_SOLUTION_CHARS, boxed_spans, gold_answer, normalise,
                                         question_and_trace)
from skillexp.tasks.sources import iter_rows, read_rows
from skillexp.tasks.standins import fake_rows


@pytest.mark.parametrize(("trace", "gold", "why"), [
    ("<think>\nhmm\n</think>\n\nThe answer is $\\boxed{42}$.", "42", "ok"),
    ("<think>\nmaybe \\boxed{41}? no\n</think>\n\nSo $\\boxed{42}$.", "42", "ok"),  # inside think: not read
    ("<think>\nit is \\boxed{42}\n</think>\n\nThe answer is 42.", None, "no_boxed"),  # boxed only inside think
    ("<think>\nx\n</think>\n(a) $\\boxed{3}$ and (b) $\\boxed{4}$", None, "differing_boxed"),
    ("<think>\nx\n</think>\n$\\boxed{\\dfrac{1}{2}}$, that is $\\boxed{ \\frac{1}{2} }$.", "\\frac{1}{2}", "ok"),
    ("<think>\nx\n</think>\n$\\boxed{7}$ ... again $\\boxed{7}$", "7", "ok"),  # two equal: kept
    ("<think>\nx\n</think>\n$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", "ok"),  # nested braces
    ("<think>\nx\n</think>\n$\\boxed{\\sqrt{\\frac{a^{2}}{b_{1}}}}$", "\\sqrt{\\frac{a^{2}}{b_{1}}}", "ok"),
    ("<think>\nx\n</think>\n$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}", "ok"),  # escaped braces balance too
    ("The answer is $\\boxed{42}$.", None, "no_think_end"),  # no </think>
    ("<think>\nx\n</think>\n$\\boxed{\\frac{1}{2}$", None, "unclosed_boxed"),
    ("<think>\nx\n</think>\n$\\boxed{}$", None, "no_boxed"),  # an empty box is no answer
    ("<think>a</think> b </think>\n$\\boxed{5}$", "5", "ok"),  # the last </think> counts
    ("<think>a</think>\n\\boxed{5}\n</think>\nnothing", None, "no_boxed"),
])
def test_gold_answer_from_hand_written_traces(trace: str, gold: str | None, why: str) -> None:
    assert gold_answer(trace) == (gold, why)


def test_normalise_is_textual() -> None:
    assert normalise(" \\left( 1,\\,2 \\right) ") == normalise("(1,2)") == "(1,2)"
    assert normalise("$\\tfrac{1}{2}$.") == "\\frac{1}{2}"
    assert normalise("0.5") != normalise("\\frac{1}{2}")  # not math-verify: equal values written apart differ


def test_every_scan_is_bounded() -> None:
    cases = ["<think>" + "x" * (MAX_SOLUTION_CHARS + 1) + "</think>\\boxed{1}",  # a huge turn: not scanned
             "<think>x</think>" + "y" * (MAX_FINAL_CHARS + 1) + "\\boxed{1}",  # a huge final part: not scanned
             "<think>x</think>" + "\\boxed{" * (MAX_FINAL_CHARS // 8),  # every box open: one pass, unclosed
             "<think>x</think>" + "{" * (MAX_FINAL_CHARS - 20) + "\\boxed{1}",
             "<think>x</think>" + "\\boxed{}" * (MAX_FINAL_CHARS // 9),
             "<think>x</think>" + "\\boxed" + " " * 10_000 + "{1}",
             "</think>" * 40_000, "<think>" * 2_000_000]
    start = time.perf_counter()
    found = [gold_answer(t) for t in cases]
    assert time.perf_counter() - start < 0.5
    assert [why for _, why in found] == ["too_long", "too_long", "unclosed_boxed", "ok", "no_boxed", "no_boxed",
                                         "no_boxed", "too_long"]
    assert boxed_spans("\\boxed{" + "x" * 2000 + "}") is None  # a span longer than MAX_ANSWER_CHARS: unclosed


def test_question_and_trace_read_both_turn_shapes() -> None:
    assert question_and_trace([{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]) == ("Q", "A")
    assert question_and_trace([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                               {"role": "assistant", "content": "A"}]) == ("Q", "A")
    assert question_and_trace([{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]) == ("Q", None)
    assert question_and_trace([{"from": "human", "value": None}, {"from": "gpt", "value": "A"}]) == (None, None)
    assert question_and_trace(["not a turn", 3]) == (None, None)


def _row(question: str, trace: str, shape: str = "sharegpt", domain: str = "math") -> dict:
    if shape == "sharegpt":
        turns = [{"from": "human", "value": question}, {"from": "gpt", "value": trace}]
    else:
        turns = [{"role": "user", "content": question}, {"role": "assistant", "content": trace}]
    return {"conversations": turns, "domain": domain, "source": "hand", "difficulty": 3}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = "<think>\nwork\n</think>\n\nSo $\\boxed{{{}}}$."


def test_the_task_reads_kept_rows_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [_row(f"Problem {i}: compute it.", GOOD.format(i), shape="sharegpt" if i % 2 else "chat")
            for i in range(6)]
    rows += [_row("Problem 0: compute it.", GOOD.format(99)),  # a repeat of a kept question: the first row wins
             _row("Only inside.", "<think>\\boxed{1}</think> one"),
             _row("Two.", "<think></think>\\boxed{1} \\boxed{2}"),
             _row("No end.", "\\boxed{1}"), _row("Code.", "<think></think>```print(1)```", domain="code"),
             {"conversations": [{"from": "human", "value": "Q?"}], "domain": "math"},
             _row("Sci.", GOOD.format(5), domain="science")]
    task = build_task("openthoughts", {"path": str(_write(tmp_path / "ot.jsonl", rows)), "num_val": 1, "num_rl": 2,
                                       "domains": ["math", "code"]})
    items = [it for s in ("test", "val", "rl", "train") for it in task.items(s)]
    assert [len(task.items(s)) for s in ("test", "val", "rl", "train")] == [0, 1, 2, 3]
    assert len({it.id for it in items}) == 6 and {it.answer for it in items} == {str(i) for i in range(6)}
    assert task.dropped == {"repeated_question": 1, "no_boxed": 2, "differing_boxed": 1, "no_think_end": 1,
                            "no_question_or_trace": 1, "other_domain": 1}
    item = next(it for it in items if it.answer == "3")
    assert item.question == "Problem 3: compute it." and item.meta["solution"] == GOOD.format(3)
    assert item.meta["domain"] == "math" and item.meta["difficulty"] == 3
    # graded as the math task grades; the QwQ trace is the reference solution (method=sft: QwQ distillation)
    assert task.score(item, "so <answer>3</answer>") == 1.0 and task.score(item, "<answer>4</answer>") == 0.0
    assert task.score(item, task.reference_solution(item)) == 1.0
    assert task.reference_solution(item) == GOOD.format(3) + "\n<answer>3</answer>"
    again = build_task("openthoughts", {"path": str(_write(tmp_path / "rev.jsonl", rows[:6][::-1])), "num_val": 1,
                                        "num_rl": 2})
    assert again.items("rl") == task.items("rl")  # the file's order does not move a question between splits


def test_a_table_without_the_turns_field_names_it_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "ot.jsonl", [{"messages": [], "domain": "math"}])
    with pytest.raises(ValueError, match=r"ot.jsonl:1: .*'conversations'.*task.conversations_field"):
        build_task("openthoughts", {"path": str(path)}).check_source()
    path = _write(tmp_path / "none.jsonl", [_row("Only inside.", "<think>\\boxed{1}</think> one")])
    with pytest.raises(ValueError, match=r"none of the 1 rows .* \{'no_boxed': 1\}"):
        build_task("openthoughts", {"path": str(path)}).check_source()


def test_the_task_builds_from_the_generated_hub_stand_in() -> None:
    """`task=openthoughts` reads the prepared hub table (skillexp/tasks/standins.py writes an OT3-shaped stand-in where
    `skillexp data prepare task=openthoughts` would put it; conftest points SKILLEXP_DATA_DIR there)."""
    task = build_task("openthoughts", {"num_val": 2, "num_rl": 4})
    (source,) = task.sources()
    assert (source.path, source.hf_split, source.hub) == ("open-thoughts/OpenThoughts3-1.2M", "train", True)
    task.check_source()
    train = task.items("train")
    assert len(task.items("val")) == 2 and len(task.items("rl")) == 4 and len(train) == 12 - 6
    assert task.dropped == {} and all("</think>" in it.meta["solution"] for it in train)
    expected = {json.dumps(r["conversations"][0]["value"]) for r in fake_rows(task, 12)}
    assert {json.dumps(it.question) for it in task.items("val") + task.items("rl") + train} == expected


def test_iter_rows_streams_the_rows_read_rows_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_row(f"P{i}", GOOD.format(i)) for i in range(5)]
    jsonl = _write(tmp_path / "t.jsonl", rows)
    jsonl.write_text(jsonl.read_text() + "\n\n", encoding="utf-8")  # blank lines are skipped alike
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    for file in (jsonl, parquet):
        assert list(iter_rows(str(file), None, "train", None, "t")) == read_rows(str(file), None, "train", None, "t")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(rows[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        list(iter_rows(str(bad), None, "train", None, "t"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no rows"):
        list(iter_rows(str(empty), None, "train", None, "t"))
