"""SkillFactory traces on fixed inputs: exact text per seed for both samplers and every ablation, sampler
properties, the released phrase lists, and the format module's writers and readers (`traces/format.py`: stitching,
block scan, verdicts) on hand-written strings and garbage, including inputs made to be slow.

The exact strings are written out literally so that any change of the trace format fails here.
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
import time

import pytest

from skillexp.methods.skillfactory import phrases
from skillexp.methods.skillfactory.reflect import ReflectionFilterStats, reflection_messages, valid_reflections
from skillexp.traces.format import (BUDGET_TRIGGER, MAX_BLOCKS, MAX_REFLECTION_CHARS,
                                                        MAX_SCAN_CHARS, TRACE_TAGS, TraceStep, blocks, parse_verdict,
                                                        stitch_trace, tag_verdict, verdict_tag)
from skillexp.methods.skillfactory.traces import (Attempt, keep_question, original_prompt_only, sample_alg1,
                                                  sample_cfull, sft_row)

R_OK = "Recompute: (3 + 5) * 2 = 16. <verdict>Correct</verdict>"
R_OK2 = "All numbers used once, result 16. <verdict>Correct</verdict>"
R_BAD = "That gives the wrong number, not 16. <verdict>Incorrect</verdict>"
ATTEMPTS = [
    Attempt(0, "3 + 5 = 8\n<answer>3 + 5</answer>", "3 + 5", False, "original", (R_BAD,)),
    Attempt(1, "(3 + 5) * 2 = 16\n<answer>(3 + 5) * 2</answer>", "(3 + 5) * 2", True, "rephrase", (R_OK, R_OK2)),
    Attempt(2, "3 * 5 = 15\n<answer>3 * 5</answer>", "3 * 5", False, "alternatively", (R_BAD,)),
    Attempt(3, "2 * (5 + 3) = 16\n<answer>2 * (5 + 3)</answer>", "2 * (5 + 3)", True, "plan_and_execute", (R_OK,)),
    Attempt(4, "(5 + 3) * 2 = 16\n<answer>(5 + 3) * 2</answer>", "(5 + 3) * 2", True, "original", (R_OK2,)),
    Attempt(5, "5 - 3 + 2 = 4\n<answer>5 - 3 + 2</answer>", "5 - 3 + 2", False, "original", (R_BAD,)),
]
S = {a.index: f"<sample>\n{a.text}\n</sample>\n" for a in ATTEMPTS}  # the sample blocks, to keep expectations short
OK, OK2, BAD = (f"<reflect>\n{r}\n</reflect>\n" for r in (R_OK, R_OK2, R_BAD))


def test_cfull_exact_text() -> None:
    traces = sample_cfull(ATTEMPTS, random.Random(2))
    assert [t.attempts for t in traces] == [[1], [1, 3], [0, 1, 4], [2, 0, 3, 4], [2, 0, 4, 5, 1]]
    assert traces[2].text == (
        "<think>\n" + S[0] + BAD + "Time to review my response one more time.\n"
        + S[1] + OK2 + "Wait! I should double check my answer.\n"
        + S[4] + OK2 + "</think>\n\n\nIn conclusion, the answer is:\n\n<answer>\n(5 + 3) * 2\n</answer>")
    assert traces[0].text == (
        "<think>\n" + S[1] + OK + "</think>\n\n\nThe final answer is:\n\n<answer>\n(3 + 5) * 2\n</answer>")
    assert traces[2].variants == ["original", "rephrase", "original"] and traces[2].sampler == "cfull"
    assert traces == sample_cfull(ATTEMPTS, random.Random(2))  # deterministic per seed


def test_alg1_exact_text() -> None:
    (trace,) = sample_alg1(ATTEMPTS, random.Random(4))
    assert (trace.attempts, trace.correctness, trace.sampler) == ([1, 2, 3], [True, False, True], "alg1")
    assert trace.text == (
        "<think>\n" + S[1] + OK + "This previous answer was correct, but I should double check it to be sure.\n"
        + S[2] + BAD + "I should check my response again.\n"
        + S[3] + OK + "</think>\n\n\nThe final answer is:\n\n<answer>\n2 * (5 + 3)\n</answer>")


def test_no_reflections_exact_text() -> None:
    trace = sample_cfull(ATTEMPTS, random.Random(2), ablation="no_reflections")[2]
    assert trace.attempts == [2, 5, 4]
    assert trace.text == (  # the blank lines are where the released `.replace` removed "<reflect>\n\n</reflect>"
        "<think>\n" + S[2] + "\nLet me verify my answer.\n" + S[5] + "\nI'll recheck what I said earlier.\n"
        + S[4] + "\n</think>\n\n\nSo after checking, the final result is:\n\n<answer>\n(5 + 3) * 2\n</answer>")


def test_no_sample_order_exact_text() -> None:
    trace = sample_cfull(ATTEMPTS, random.Random(0), ablation="no_sample_order")[1]
    assert (trace.attempts, trace.correctness) == ([3, 0], [True, False])  # ends on an incorrect attempt
    assert trace.text == (
        "<think>\n" + S[3] + OK + "I can resolve this question to be sure.\n"
        + S[0] + BAD + "</think>\n\n\nSo after checking, the final result is:\n\n<answer>\n3 + 5\n</answer>")


def test_no_prompt_diversity_exact_text() -> None:
    traces = sample_cfull(ATTEMPTS, random.Random(0), ablation="no_prompt_diversity")
    assert [t.attempts for t in traces] == [[4], [5, 4], [5, 0, 4]]  # only 3 `original` attempts exist
    assert traces[2].text == (
        "<think>\n" + S[5] + BAD + "Oops, that wasn't right. Let me take another shot.\n"
        + S[0] + BAD + "I may have missed the mark earlier. Let me rethink and attempt again.\n"
        + S[4] + OK2 + "</think>\n\n\nSo after checking, the final result is:\n\n<answer>\n(5 + 3) * 2\n</answer>")
    assert original_prompt_only(ATTEMPTS) == [ATTEMPTS[0], ATTEMPTS[4], ATTEMPTS[5]]


def _random_attempts(rng: random.Random) -> list[Attempt]:
    out = []
    for i in range(rng.randint(5, 12)):
        ok = i == 0 or rng.random() < 0.4
        verdict = "Correct" if ok else "Incorrect"
        refl = tuple(f"check {i}.{j} <verdict>{verdict}</verdict>" for j in range(rng.randint(1, 3)))
        out.append(Attempt(i, f"try {i}\n<answer>{i}</answer>", str(i), ok, rng.choice(["original", "rephrase"]),
                           refl))
    return out


def _blocks(text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)


@pytest.mark.parametrize("seed", range(25))
def test_sampler_properties(seed: int) -> None:
    rng = random.Random(seed)
    attempts = _random_attempts(rng)
    by_index = {a.index: a for a in attempts}
    traces = sample_cfull(attempts, rng) + sample_alg1(attempts, rng) + sample_alg1(attempts, rng, ablation="none",
                                                                                    fix_phrase_concatenation=True)
    assert [t.num_attempts for t in traces[:5]] == [1, 2, 3, 4, 5]  # *C_full: N = 1..5, one trace each
    for t in traces:
        assert t.correctness[-1] is True and len(set(t.attempts)) == t.num_attempts == len(t.correctness)
        assert t.text.startswith("<think>\n<sample>\n") and t.text.endswith(f"<answer>\n{t.attempts[-1]}\n</answer>")
        assert _blocks(t.text, "sample") == [by_index[i].text for i in t.attempts]
        reflections = _blocks(t.text, "reflect")
        assert [parse_verdict(r) for r in reflections] == t.correctness  # each reflection's verdict is right
        assert all(r in by_index[i].reflections for r, i in zip(reflections, t.attempts))
    alg1 = traces[5:]
    assert all(t.correctness.count(False) < t.correctness.count(True) for t in alg1)  # n- < n+
    assert all(t.correctness.count(True) <= 5 for t in alg1)  # n+ <= L_max


@pytest.mark.parametrize("seed", range(25))
def test_glue_follows_correctness(seed: int) -> None:
    rng = random.Random(seed)
    attempts = _random_attempts(rng)
    for fix in (False, True):
        after_ok = set(phrases.correct_glue(fix)) | set(phrases.GENERIC_GLUE)
        after_bad = set(phrases.incorrect_glue(fix)) | set(phrases.GENERIC_GLUE)
        for t in sample_cfull(attempts, rng, fix_phrase_concatenation=fix):
            glues = re.findall(r"</reflect>\n(.*)\n<sample>", t.text)
            assert len(glues) == t.num_attempts - 1
            assert all(g in (after_ok if ok else after_bad) for g, ok in zip(glues, t.correctness))
        for t in sample_cfull(attempts, rng, ablation="no_reflections"):
            assert "<reflect>" not in t.text and t.correctness[-1]
            glues = re.findall(r"</sample>\n\n(.*)\n<sample>", t.text)
            assert len(glues) == t.num_attempts - 1 and all(g in phrases.GENERIC_GLUE for g in glues)


def test_no_sample_order_may_end_wrong_and_answers_with_the_last_attempt() -> None:
    traces = [t for seed in range(20) for t in sample_cfull(ATTEMPTS, random.Random(seed), ablation="no_sample_order")]
    assert not all(t.correctness[-1] for t in traces) and any(t.correctness[-1] for t in traces)
    answers = {a.index: a.answer for a in ATTEMPTS}
    assert all(t.text.endswith(f"<answer>\n{answers[t.attempts[-1]]}\n</answer>") for t in traces)
    alg1 = [sample_alg1(ATTEMPTS, random.Random(s), ablation="no_sample_order")[0] for s in range(40)]
    assert not all(t.correctness[-1] for t in alg1)


def test_question_filter_and_empty_cases() -> None:
    assert keep_question(ATTEMPTS, min_attempts=6) and not keep_question(ATTEMPTS, min_attempts=7)
    assert not keep_question([a for a in ATTEMPTS if not a.correct], min_attempts=1)
    bare = [Attempt(a.index, a.text, a.answer, a.correct, a.variant) for a in ATTEMPTS]  # no valid reflection
    assert not keep_question(bare, 1) and keep_question(bare, 6, ablation="no_reflections")
    assert not keep_question(ATTEMPTS, 4, ablation="no_prompt_diversity")  # 3 `original` attempts
    assert sample_cfull(bare, random.Random(0)) == [] and sample_alg1(bare, random.Random(0)) == []
    assert [t.num_attempts for t in sample_cfull(ATTEMPTS[:3], random.Random(0))] == [1, 2, 3]  # N skipped
    with pytest.raises(ValueError):
        sample_cfull(ATTEMPTS, random.Random(0), ablation="no_glue")


def test_sft_row() -> None:
    trace = sample_cfull(ATTEMPTS, random.Random(2))[1]
    row = sft_row([{"role": "user", "content": "Make 16."}], trace, question_id="cd-7")
    assert row["messages"] == [{"role": "user", "content": "Make 16."},
                               {"role": "assistant", "content": trace.text}]
    assert (row["attempts"], row["correctness"], row["num_attempts"], row["question_id"]) == ([1, 3], [True] * 2,
                                                                                            2, "cd-7")


def test_phrase_lists_as_released() -> None:
    sizes = [len(phrases.GENERIC_GLUE), len(phrases.correct_glue()), len(phrases.correct_glue(True)),
             len(phrases.incorrect_glue()), len(phrases.incorrect_glue(True)), len(phrases.ENDING),
             len(phrases.BACKTRACK), len(phrases.CORRECT_CONFIRM)]
    assert sizes == [11, 10, 14, 13, 14, 7, 9, 7]
    assert ("That response looks right, and I have verified it. It might be worth doinng it again just in case."
            "That answer seems fine, but I'd like to double-check for to be safe.") in phrases.correct_glue()
    assert ("On review, my last response falls short, so I'll attempt a new one.After reconsideration, I can see "
            "my earlier answer wasn't right, and I'll try again.") in phrases.incorrect_glue()
    assert "That answer seems fine, but I'd like to double-check for to be safe." in phrases.correct_glue(True)
    assert "".join(phrases.correct_glue(True)) == "".join(phrases.correct_glue())


@pytest.mark.parametrize(("text", "verdict"), [
    ("ok <verdict>Correct</verdict>", True), ("<verdict> INCORRECT </verdict>", False),
    ("<verdict>CORRECT </verdict>", True), ("<verdict>\ncorrect\n</verdict> trailing", True),
    ("<verdict>correctly</verdict>", None), ("<verdict>Correct.</verdict>", None), ("<verdict></verdict>", None),
    ("<verdict>Correct", None), ("Correct</verdict>", None), ("</verdict><verdict>Correct", None),
    ("no tags at all", None), ("", None), (None, None), (42, None), ("<VERDICT>Correct</VERDICT>", None),
    ("<verdict><verdict>Correct</verdict></verdict>", None),
    ("<verdict>Incorrect</verdict> then <verdict>Correct</verdict>", False),
    ("x" * 100_000 + "<verdict>Correct</verdict>", None), ("<verdict>" * 50_000, None),
])
def test_parse_verdict(text: object, verdict: bool | None) -> None:
    assert parse_verdict(text) is verdict  # type: ignore[arg-type]


def test_parse_verdict_never_raises_on_garbage() -> None:
    rng = random.Random(0)
    pieces = ["<verdict>", "</verdict>", "<", ">", "/", "Correct", "incorrect", " ", "\n", "\x00", "é", "verdict"]
    for _ in range(2_000):
        assert parse_verdict("".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))) in (True, False, None)


def test_valid_reflections_counts_why() -> None:
    stats = ReflectionFilterStats()
    texts = [R_OK, R_BAD, "no verdict", "A Fast check. <verdict>Correct</verdict>",
             "Good idea <verdict>Correct</verdict>"]
    assert valid_reflections(texts, True, stats=stats) == [R_OK]
    assert stats.as_dict() == {"total": 5, "kept": 1, "no_verdict": 1, "wrong_verdict": 1, "banned_substring": 2,
                               "verdict_tags_added": 0}
    assert valid_reflections(texts, False, stats=stats) == [R_BAD]
    assert (stats.total, stats.kept, stats.wrong_verdict) == (10, 2, 4)
    assert len(valid_reflections(texts, True, drop_substrings=())) == 3  # the undocumented filter switched off
    assert valid_reflections([" padded <verdict>Correct</verdict>\n"], True) == [" padded <verdict>Correct</verdict>\n"]


def test_reflection_prompt_shows_question_and_attempt() -> None:
    msgs = reflection_messages("Make 16 from 3, 5, 2.", "(3 + 5) * 2 <answer>(3 + 5) * 2</answer>")
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[-1]["content"]
    assert "Make 16 from 3, 5, 2." in user and "<answer>(3 + 5) * 2</answer>" in user
    assert "<verdict>Correct</verdict>" in user and "<verdict>Incorrect</verdict>" in user


def test_lenient_reflections_get_verdict_tags_from_their_closing_words() -> None:
    assert tag_verdict("3 x 4 is 12, so the answer is correct.") == \
        "3 x 4 is 12, so the answer is correct.\n<verdict>Correct</verdict>"
    assert tag_verdict("Correct at first sight, but 3 x 4 is 12: INCORRECT").endswith("<verdict>Incorrect</verdict>")
    assert tag_verdict("The answer is correctly formatted.") is None  # "correctly" is not a verdict
    stats = ReflectionFilterStats()
    texts = ["It is correct.", "It is incorrect.", "No opinion.", "<verdict>maybe</verdict> correct"]
    kept = valid_reflections(texts, True, (), stats, lenient=True)
    assert kept == ["It is correct.\n<verdict>Correct</verdict>"]
    assert (stats.verdict_tags_added, stats.wrong_verdict, stats.no_verdict) == (2, 1, 2)
    assert valid_reflections(texts, True, (), ReflectionFilterStats()) == []  # strict by default


def test_stitch_trace_exact_text() -> None:
    steps = [TraceStep("try 1 <answer>3</answer>", "no <verdict>Incorrect</verdict>", "Wait..."),
             TraceStep("try 2 <answer>4</answer>", "yes <verdict>Correct</verdict>", None)]
    assert stitch_trace(steps, "The final answer is:", "4") == (
        "<think>\n<sample>\ntry 1 <answer>3</answer>\n</sample>\n<reflect>\nno <verdict>Incorrect</verdict>\n"
        "</reflect>\nWait...\n<sample>\ntry 2 <answer>4</answer>\n</sample>\n<reflect>\nyes "
        "<verdict>Correct</verdict>\n</reflect>\n</think>\n\n\nThe final answer is:\n\n<answer>\n4\n</answer>")
    ablated = stitch_trace([TraceStep("a", None, "g"), TraceStep("b", None, None)], "End.", None)
    assert ablated == "<think>\n<sample>\na\n</sample>\n\ng\n<sample>\nb\n</sample>\n\n</think>\n\n\nEnd.\n\n" \
        "<answer>\nNone\n</answer>"  # a missing answer is written as released
    with pytest.raises(ValueError):
        stitch_trace([], "End.", "4")


def test_stitched_trace_reads_back() -> None:
    """What `stitch_trace` writes, `blocks` and `parse_verdict` read back: attempts, reflections and verdicts."""
    attempts, reflections = ["a <answer>1</answer>", "b <answer>2</answer>"], [f"r {verdict_tag(False)}", "r ?"]
    text = stitch_trace([TraceStep(a, r, "glue") for a, r in zip(attempts, reflections)], "End.", "2")
    found = blocks(text)
    assert found == [("sample", f"\n{attempts[0]}\n"), ("reflect", f"\n{reflections[0]}\n"),
                     ("sample", f"\n{attempts[1]}\n"), ("reflect", f"\n{reflections[1]}\n")]
    assert [parse_verdict(body) for kind, body in found if kind == "reflect"] == [False, None]
    assert all(tag in text for tag in TRACE_TAGS)


@pytest.mark.parametrize(("text", "found"), [
    ("", []), ("plain <answer>3</answer>", []),
    ("<sample>a</sample><reflect>b <verdict>Correct</verdict></reflect><sample>c</sample>",
     [("sample", "a"), ("reflect", "b <verdict>Correct</verdict>"), ("sample", "c")]),
    ("<reflect>first</reflect> text <sample>\nx\n</sample>", [("reflect", "first"), ("sample", "\nx\n")]),
    ("<sample>a</sample><sample>unclosed <reflect>r</reflect>", [("sample", "a")]),  # stops at an unclosed block
    ("<sample>a <reflect>b</sample> c</reflect>", [("sample", "a <reflect>b")]),  # a block ends at its own close
    ("<sample>a</reflect></sample></sample>", [("sample", "a</reflect>")]),  # stray closes are text
    ("<SAMPLE>a</SAMPLE><sample >b</sample >", []),  # tags are exact
])
def test_blocks_on_hand_written_text(text: str, found: list[tuple[str, str]]) -> None:
    assert blocks(text) == found


def test_blocks_are_bounded() -> None:
    many = "<sample>x</sample><reflect>y</reflect>" * 1_000
    assert len(blocks(many)) == MAX_BLOCKS == 64
    head = "<sample>early</sample>"
    assert MAX_SCAN_CHARS == 50_000
    assert blocks(head + " " * (50_000 - len(head))) == [("sample", "early")]
    assert blocks(head + " " * (50_000 - len(head) + 1)) == []  # out of the scanned tail


def test_several_attempts_with_verdicts_present_absent_and_malformed() -> None:
    completion = ("<think>\n<sample>3 + 5 <answer>8</answer></sample><reflect>8 is not 16 <verdict>Incorrect</verdict>"
                  "</reflect>\nWait...\n<sample>3 * 5 <answer>15</answer></sample><reflect>I think it is right."
                  "</reflect><sample>(3 + 5) * 2 <answer>(3 + 5) * 2</answer></sample><reflect><verdict>Correct."
                  "</verdict></reflect><sample>2 * 8 <answer>2 * 8</answer></sample><reflect><verdict> correct "
                  "</verdict></reflect></think><answer>2 * 8</answer>")
    found = blocks(completion)
    assert [kind for kind, _ in found] == ["sample", "reflect"] * 4
    assert [parse_verdict(body) for kind, body in found if kind == "reflect"] == [False, None, None, True]


def test_verdict_tag_round_trip_and_trigger() -> None:
    assert verdict_tag(True) == "<verdict>Correct</verdict>" and verdict_tag(False) == "<verdict>Incorrect</verdict>"
    assert parse_verdict(verdict_tag(True)) is True and parse_verdict(verdict_tag(False)) is False
    assert BUDGET_TRIGGER == "<sample>"  # the paper's trigger: the tag that opens another attempt


def test_readers_stay_fast_on_huge_adversarial_input() -> None:
    """Inputs on which a lazy regex or an uncapped scan is quadratic: thousands of unclosed tags, megabytes."""
    texts = ["<sample>" * 1_000_000, "<sample>" * 6_000 + "<reflect>", "<reflect><sample>" * 200_000,
             "<sample>x</sample>" * 100_000, "<verdict>" * 2_000, "<verdict>" * 1_000_000,
             "correct " * (MAX_REFLECTION_CHARS // 8), "x" * 10_000_000]
    start = time.perf_counter()
    for text in texts:
        assert len(blocks(text)) <= MAX_BLOCKS
        assert parse_verdict(text) is None
        tag_verdict(text)
    assert time.perf_counter() - start < 0.5  # about 5 ms here; a quadratic scan takes seconds per text


def test_format_module_imports_only_the_standard_library() -> None:
    """`skillexp.eval` (and its config) imports the format: that must not load a method, torch or transformers."""
    code = ("import sys; import skillexp.traces.format; "
            "print(sorted(m for m in sys.modules if m.startswith(('skillexp.methods', 'torch', 'transformers'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
