"""`method=distill` and `method=bolt` against the scripted teacher, a real OpenAI-compatible server on loopback
(skillexp/teachers/scripted.py): the data holds only correct replies, whole (a reasoning model's thinking kept as
<think>), BOLT's only replies in its examples' format; teacher use is metered; a reasoning API's refusals name
the fix."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.methods.distill import build_distill, follows_format, load_examples, with_answer
from skillexp.methods.config import DistillConfig
from skillexp.pipeline import runtime, stage_inputs
from skillexp.stage_cache import StageCache
from skillexp.tasks.base import Item
from skillexp.teachers.base import Teacher
from skillexp.teachers.openai_client import TeacherAPIError
from skillexp.teachers.scripted import ScriptedTeacher, serve
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.utils.io import read_jsonl
from tests.test_configs import _compose

SMALL = ["model=tiny", "+task.num_train=24", "method.num_questions=24", "scoring.workers=0"]


@pytest.fixture
def scripted():
    """Start a scripted teacher; yields a function of its settings that returns (teacher, base_url)."""
    servers = []

    def start(**kw) -> tuple[ScriptedTeacher, str]:
        teacher = ScriptedTeacher(**kw)
        server = serve(teacher)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return teacher, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _build(overrides: list[str], tmp_path: Path, make_teacher=None):
    run = load_run_config(_compose([*SMALL, *overrides]))
    task = run.task.build()
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    inputs = stage_inputs(run, StageCache(None, tmp_path), tmp_path / "base")["sft_data"]
    out = tmp_path / "sft_data"
    out.mkdir(parents=True, exist_ok=True)
    items = task.items("train")[: run.method.num_questions]
    try:
        rows, stats = build_distill(inputs, task, items, out, runtime(run, tmp_path, tracker), make_teacher)
    finally:
        tracker.finish()
    return run, task, items, rows, stats, read_jsonl(out / "traces.jsonl")


def test_distill_keeps_the_correct_replies_whole_with_the_reasoning_the_api_sent_apart(scripted, tmp_path) -> None:
    teacher, url = scripted(style="reasoning", wrong_every=3)
    run, task, items, rows, stats, log = _build(["method=distill", "teacher=scripted", f"teacher.base_url={url}",
                                                 f"teacher.cache_dir={tmp_path / 'answers'}"], tmp_path)
    by_id = {it.id: it for it in items}
    wrong = [it for it in items if teacher._wrong(task.messages(it)[-1]["content"])]
    assert 0 < len(wrong) < len(items)  # the filter has something to drop, and something to keep
    assert len(rows) == len(items) - len(wrong) and stats["distill/wrong"] == len(wrong)
    for row in rows:
        item, reply = by_id[row["question_id"]], row["messages"][-1]["content"]
        assert row["messages"][:-1] == task.messages(item)  # posed as the student is posed it
        assert task.score(item, reply) == 1.0
        reasoning, content = teacher._text(task.messages(item), 0)
        assert reply == f"<think>\n{reasoning}\n</think>\n\n{content}"  # nothing the student must learn is cut
    assert {r["question_id"] for r in log if r["verdict"] == "wrong"} == {it.id for it in wrong}
    # metered: one request per question, the tokens the endpoint counted, their price from teacher.prices
    assert stats["teacher/http/requests"] == len(items) == teacher.requests
    price = run.teacher.price()
    assert price is not None and stats["teacher/cost_usd"] == pytest.approx(
        price.cost(stats["teacher/openai/prompt_tokens"], stats["teacher/openai/completion_tokens"]))
    # asked again (a resumed build): every answer comes from the teacher's cache, nothing is sent or charged
    *_, again, _ = _build(["method=distill", "teacher=scripted", f"teacher.base_url={url}",
                           f"teacher.cache_dir={tmp_path / 'answers'}"], tmp_path / "again")
    assert teacher.requests == len(items) and again["teacher/chat/cache_hits"] == len(items)
    assert again.get("teacher/cost_usd") == 0.0


def test_a_reasoning_api_refuses_max_tokens_with_the_fix_and_takes_what_it_asks_for(scripted, tmp_path) -> None:
    teacher, url = scripted(style="think", reasoning_api=True)
    base = ["method=distill", "teacher=scripted", f"teacher.base_url={url}", "teacher.cache=false"]
    with pytest.raises(TeacherAPIError, match=r"refused the parameter 'max_tokens'.*teacher\.max_tokens_param="
                                              r"max_completion_tokens"):
        _build(base, tmp_path)
    with pytest.raises(TeacherAPIError, match=r"'temperature'.*teacher\.send_temperature=false"):
        _build([*base, "teacher.max_tokens_param=max_completion_tokens"], tmp_path / "b")
    *_, rows, stats, _ = _build([*base, "teacher.max_tokens_param=max_completion_tokens",
                                 "teacher.send_temperature=false"], tmp_path / "c")
    assert rows and all(r["messages"][-1]["content"].startswith("<think>\n") for r in rows)


def test_bolt_sends_its_examples_and_keeps_only_replies_in_their_format(scripted, tmp_path) -> None:
    _, think_url = scripted(style="think")
    run, task, items, rows, stats, _ = _build(["method=bolt", "teacher=scripted", f"teacher.base_url={think_url}",
                                               "teacher.cache=false"], tmp_path)
    assert len(rows) == len(items) and all(follows_format(r["messages"][-1]["content"]) for r in rows)
    examples = load_examples(run.method.distill, "countdown", ".")
    assert len(examples) == 10
    # the same questions from a teacher that does not think in the examples' format: nothing is kept
    _, plain_url = scripted(style="plain")
    *_, plain_rows, plain_stats, log = _build(["method=bolt", "teacher=scripted", f"teacher.base_url={plain_url}",
                                               "teacher.cache=false"], tmp_path / "plain")
    assert plain_rows == [] and plain_stats["bolt/format_dropped"] == len(items)
    assert {r["verdict"] for r in log} == {"format_dropped"}


def test_bolt_conversations_hold_the_examples_before_the_question(tmp_path) -> None:
    from skillexp.methods.distill import BOLT_SYSTEM, conversations

    run = load_run_config(_compose([*SMALL, "method=bolt", "teacher=oracle"]))
    task = run.task.build()
    inputs = stage_inputs(run, StageCache(None, tmp_path), tmp_path / "base")["sft_data"]
    item = task.items("train")[0]
    conv = conversations(inputs.method, inputs.examples, task, [item])[0]
    assert conv[0] == {"role": "system", "content": BOLT_SYSTEM} and len(conv) == 1 + 2 * 10 + 1
    assert [m["role"] for m in conv[1:-1]] == ["user", "assistant"] * 10
    assert conv[2]["content"] == inputs.examples[0]["response"]
    assert conv[-1] == task.messages(item)[-1]  # the question last, posed as the student is posed it


def test_distill_from_the_dataset_asks_no_teacher(tmp_path) -> None:
    def no_teacher() -> Teacher:
        raise AssertionError("a teacher was built")

    run = load_run_config(_compose([*SMALL, "method=distill", "method.distill.source=dataset"]))
    assert run.method.needs_teacher() is False
    task = run.task.build()
    inputs = stage_inputs(run, StageCache(None, tmp_path), tmp_path / "base")["sft_data"]
    assert inputs.teacher is None  # not in the key either
    items = [Item("a", "Using the numbers in the list [2, 3, 4], create an equation that equals 20.", "(2 + 3) * 4",
                  {"numbers": [2, 3, 4], "target": 20, "solution": "<think>\n2 + 3 = 5, 5 * 4 = 20\n</think>\n\n"
                                                                     "The answer is \\boxed{(2 + 3) * 4}"}),
             Item("b", "Using the numbers in the list [2, 3, 4], create an equation that equals 24.", "(2 * 3) * 4",
                  {"numbers": [2, 3, 4], "target": 24, "solution": "<answer>2 + 3 + 4</answer>"}),
             Item("c", "Using the numbers in the list [2, 3, 5], create an equation that equals 25.", "(2 + 3) * 5",
                  {"numbers": [2, 3, 5], "target": 25})]
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    try:
        rows, stats = build_distill(inputs, task, items, tmp_path, runtime(run, tmp_path, tracker), no_teacher)
    finally:
        tracker.finish()
    assert [r["question_id"] for r in rows] == ["a"]  # b is wrong, c has no trace
    reply = rows[0]["messages"][-1]["content"]  # the boxed answer restated where the task reads it, nothing cut
    assert reply.startswith(items[0].meta["solution"]) and reply.endswith("<answer>(2 + 3) * 4</answer>")
    assert stats["distill/restated"] == 1 and stats["distill/wrong"] == 1 and stats["distill/traces"] == 2


def test_a_reply_without_an_answer_is_not_given_one() -> None:
    from skillexp.tasks import build_task

    task = build_task("countdown", {})
    item = Item("a", "q", "2 + 2", {"numbers": [2, 2], "target": 4})
    assert with_answer(task, item, "<think>\nhm\n</think>\n\nno idea") is None
    assert with_answer(task, item, "<answer>2 + 2</answer>") == "<answer>2 + 2</answer>"


@pytest.mark.parametrize("content, message", [
    ("not json\n", "line 1: not JSON"),
    (json.dumps({"question": "q"}) + "\n", "line 1: expected JSON lines"),
    (json.dumps({"question": "q", "response": "<answer>1</answer>"}) + "\n", "line 1: the response is not"),
    (json.dumps({"question": "q", "response": "<think>\nx\n</think>\n\n<answer>1</answer>"}) + "\n",
     "has 1 examples; method.distill.num_examples=10"),
])
def test_a_bad_examples_file_names_the_line_and_the_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_examples(DistillConfig(examples=str(path)), "countdown", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no BOLT examples ship for task 'math'.*method.distill.examples"):
        load_examples(DistillConfig(), "math", str(tmp_path))


def test_the_dry_run_counts_requests_and_cost_and_what_the_cache_already_holds(scripted, tmp_path) -> None:
    """`skillexp teacher estimate`: one request per question; after the build asked them all, every one is cached
    (free), and no request reached the server while counting."""
    from skillexp.estimate import expand, plan, report

    teacher, url = scripted(style="think")
    extra = ["method=distill", "teacher=scripted", f"teacher.base_url={url}", f"teacher.cache_dir={tmp_path / 'a'}"]
    overrides = [*SMALL, *extra]
    run = load_run_config(_compose(overrides))
    before = plan(run)[0]
    assert (before.requests, before.replies, before.cached, before.max_tokens) == (24, 24, 0, 512 * 32)
    assert before.prompt_tokens > 24 * 20 and before.completion_tokens() == 24 * 512 * 32
    assert before.completion_tokens(2000) == 24 * 2000 and teacher.requests == 0
    text = report(run, overrides, 2000)
    price = run.teacher.price()
    assert f"${price.cost(before.prompt_tokens, 24 * 2000):,.2f}" in text
    _build(extra, tmp_path)
    after = plan(run)[0]
    assert (after.cached, after.prompt_tokens, after.completion_tokens()) == (24, 0, 0)
    assert expand(["method=distill,bolt", "seed=0,1", "x={a:1,b:2}"]) == [
        ["method=distill", "seed=0", "x={a:1,b:2}"], ["method=distill", "seed=1", "x={a:1,b:2}"],
        ["method=bolt", "seed=0", "x={a:1,b:2}"], ["method=bolt", "seed=1", "x={a:1,b:2}"]]


class SlowTeacher(ScriptedTeacher):
    """The scripted teacher at 0.1 s a reply, so that a run can be killed between two of them."""

    def reply(self, body):
        import time

        time.sleep(0.1)
        return super().reply(body)


def test_a_killed_distill_build_resumes_asking_only_what_it_lacks(tmp_path: Path) -> None:
    """SIGKILL the whole run while the teacher is answering; the same command then finishes, asking the teacher only
    the questions it had no answer to (one more at most: the one in flight), and writes the whole data."""
    from tests.conftest import kill_when
    from tests.test_main import run_cli

    teacher = SlowTeacher(style="reasoning", wrong_every=4)
    server = serve(teacher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    args = ["experiment=smoke", "method=distill", "method.num_questions=24", "teacher=scripted",
            f"teacher.base_url={url}", "teacher.concurrency=1", f"teacher.cache_dir={tmp_path / 'answers'}",
            f"paths.stage_cache_dir={tmp_path / 'stages'}", "method.sft.max_steps=1", "eval.num_items=1"]
    try:
        code = (f"import sys; from skillexp.__main__ import main; sys.argv = ['skillexp', *{args!r}, "
                f"'hydra.run.dir={tmp_path / 'killed'}']; main()")
        kill_when(code, lambda: teacher.requests >= 8, tmp_path / "killed.log")
        asked = teacher.requests
        assert 8 <= asked < 24
        run_cli(args, tmp_path / "run")
        assert teacher.requests <= 24 + 1  # each question asked once, the one cut off in flight twice at most
        stats = json.loads(next((tmp_path / "run").glob("sft_data/sft_data_stats.json")).read_text())
        assert stats["teacher/chat/cache_hits"] >= asked - 1 and stats["distill/traces"] == 24
    finally:
        server.shutdown()
        server.server_close()
