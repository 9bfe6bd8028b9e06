"""Answer extraction, the four prompt variants, and task construction from config mappings."""
from __future__ import annotations

import time

import pytest

from skillexp.methods.config import HeldOut
from skillexp.tasks import TASKS, TaskSpec, build_task
from skillexp.tasks.answer import MAX_ANSWER_CHARS, last_boxed, last_integer, last_tag
from skillexp.tasks.prompts import VARIANTS
from skillexp.utils.schema import ConfigError


@pytest.mark.parametrize("text, expected", [
    ("<answer>42</answer>", "42"),
    ("<answer>\n  42 \n</answer>", "42"),
    ("<answer>1</answer> more thinking <answer>2</answer> done", "2"),
    ("<ANSWER>7</Answer>", "7"),
    ("< answer >7< / answer >", "7"),
    ("<answer><answer>8</answer>", "8"),
    ("<answer>1</answer> then <answer>2", "1"),  # a cut-off final attempt leaves the last complete one
    ("<answer>42", None),
    ("42</answer>", None),
    ("<answer></answer>", ""),
    ("no tags", None),
    ("", None),
    (None, None),
    ("<answer>" + "x" * (MAX_ANSWER_CHARS + 1) + "</answer>", None),
])
def test_last_tag(text: str | None, expected: str | None) -> None:
    assert last_tag(text) == expected


def test_extraction_is_bounded_on_huge_and_adversarial_text() -> None:
    cases = ["<answer>" * 500_000, "</answer>" * 500_000, "<" + " " * 1_000_000 + "answer>",
             "\\boxed{" * 300_000, "{" * 1_000_000, "1," * 500_000, "x" * 5_000_000 + "<answer>5</answer>"]
    start = time.perf_counter()
    for text in cases:
        last_tag(text), last_boxed(text), last_integer(text)
    assert time.perf_counter() - start < 0.5
    assert last_tag(cases[-1]) == "5"  # the answer at the end of a huge completion is still found


def test_last_boxed_and_last_integer() -> None:
    assert last_boxed("so \\boxed{\\frac{1}{2}} and finally \\boxed {3}") == "3"
    assert last_boxed("\\boxed{\\frac{1}{2}}.") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{2} then \\boxed{unclosed") is None
    assert last_integer("it is 1,234,567, or maybe 12") == "12"
    assert last_integer("the product is 1,234,567.") == "1234567"
    assert last_integer("٣٤ and ３４") is None  # only ASCII digits


@pytest.mark.parametrize("task, params, answer_type", [
    ("countdown", {}, "equation"), ("multiplication", {}, "number"), ("math", {}, "final answer"),
])
def test_prompt_variants(task: str, params: dict, answer_type: str) -> None:
    t = build_task(task, {**params, "num_test": 1})
    item = t.items("test")[0]
    assert t.messages(item) == t.messages(item, variant="original")
    for variant in VARIANTS:
        msgs = t.messages(item, variant=variant)
        assert msgs[-1]["role"] == "user" and msgs[-1]["content"].startswith(item.question)
        assert f"give your resulting {answer_type} as the answer" in msgs[-1]["content"]
        assert "<answer>(your answer)</answer>" in msgs[-1]["content"]
        assert "{" not in msgs[-1]["content"].replace(item.question, "")  # every placeholder filled
        if variant == "original":
            assert len(msgs) == 1  # SkillFactory's original variant has no system prompt
        else:
            assert msgs[0]["role"] == "system" and "never ever end without giving an answer" in msgs[0]["content"]
    with pytest.raises(ValueError, match="plan_and_execute"):
        t.messages(item, variant="socratic")


def test_default_names_and_explicit_name() -> None:
    assert build_task("countdown", {"num_numbers": 5}).name == "countdown_5"
    assert build_task("multiplication", {"digits": 3}).name == "multiplication_3"
    assert build_task("math", {}).name == "math"
    assert build_task("countdown", {}, name="cd_easy").name == "cd_easy"


def test_bad_params_fail_with_the_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"Unknown config key 'task\.num_numbrs'.*num_numbers"):
        build_task("countdown", {"num_numbrs": 4})
    with pytest.raises(ConfigError, match=r"eval\.variants\.x\.digits must be an integer"):
        build_task("multiplication", {"digits": "two"}, path="eval.variants.x")
    with pytest.raises(ConfigError, match=r"task\.num_numbers=1 is out of range: it must be in \[2, 8\]"):
        build_task("countdown", {"num_numbers": 1})
    with pytest.raises(ConfigError, match=r"task\.answer_format='latex' is not allowed; choose one of"):
        build_task("math", {"answer_format": "latex"})
    with pytest.raises(ConfigError, match=r"'chess' is not a task; choose one of \['acronym', 'countdown', "
                                          r"'gsm8k', 'letter_countdown', 'math', 'multiple_choice', "
                                          r"'multiplication', 'openthoughts'\]"):
        build_task("chess", {})
    assert sorted(TASKS) == ["acronym", "countdown", "gsm8k", "letter_countdown", "math", "multiple_choice",
                            "multiplication", "openthoughts"]


def test_the_instruction_prompt_names_the_tags_skillfactorys_traces_use() -> None:
    """SkillFactory's Instruction Prompt ablation describes the attempt / reflect / verdict / answer format in the
    prompt: the tags it names are those the traces, the skill-use metrics and budget forcing read."""
    from skillexp.traces.format import (ANSWER_CLOSE, ANSWER_OPEN, REFLECT_CLOSE, REFLECT_OPEN,
                                                            SAMPLE_CLOSE, SAMPLE_OPEN, VERDICT_CLOSE, VERDICT_OPEN)
    from skillexp.tasks.prompts import build_messages

    (user,) = build_messages("What is 2 x 3?", "number", "instruction")
    for tag in (SAMPLE_OPEN, SAMPLE_CLOSE, REFLECT_OPEN, REFLECT_CLOSE, VERDICT_OPEN, VERDICT_CLOSE, ANSWER_OPEN,
                ANSWER_CLOSE):
        assert tag in user["content"], tag
    assert user["content"].startswith("What is 2 x 3?") and "final answer" in user["content"]


def test_a_task_spec_is_parsed_once_and_written_back_as_the_config_wrote_it() -> None:
    """`{kind: ..., params}` in a config, a `TaskSpec` in schemas and records, the same mapping in keys and in
    the files a rank reads its record from (`to_plain` / `from_dict`)."""
    from skillexp.eval.config import EvalConfig
    from skillexp.stage_cache import key_data
    from skillexp.utils.schema import from_dict, to_plain

    raw = {"kind": "countdown", "num_numbers": 4}
    spec = TaskSpec.from_config(raw, "task")
    assert (spec.kind, dict(spec.params), spec.as_config()) == ("countdown", {"num_numbers": 4}, raw)
    assert spec.build().name == "countdown_4" and spec.build(name="cd").name == "cd"
    suite = EvalConfig(name="s", variants={"a": {**raw, "protocol": {"k": 1}}}, k=4)
    assert suite.variant("a").task == spec and suite.variant("a").protocol.k == 1 and suite.variant("a").subset is None
    assert key_data(suite)["variants"] == {"a": {**raw, "protocol": {"k": 1}}}
    assert key_data(spec) == raw and to_plain({"t": spec}) == {"t": raw}
    held = from_dict(HeldOut, {"variants": {"a": raw}, "split": "test"})
    assert held.variants["a"] == spec and from_dict(HeldOut, to_plain(held)) == held
    for bad, message in [({"num_numbers": 4}, r"task\.kind is required"), ("countdown", "must be a mapping"),
                         ({"kind": "chess"}, r"task\.kind='chess' is not a task")]:
        with pytest.raises(ConfigError, match=message):
            TaskSpec.from_config(bad, "task")
    with pytest.raises(ConfigError, match=r"eval\.variants\.b\.kind is required"):
        EvalConfig(name="s", variants={"b": {"digits": 2}})
