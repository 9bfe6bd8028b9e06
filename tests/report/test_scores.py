"""Per-question scores read back from the generations the eval stage writes, checked by hand and against the runs'
summary values (the fallback when they disagree or are gone)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillexp.report.collect import collect
from skillexp.report.scores import is_proportion, pooled_count, question_scores
from tests.report.fake_runs import make_run

COUNTDOWN_3 = [[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]  # K = 4 samples per question
OTHER = [[1.0, 0.0, 0.0, 0.0]] * 2


def samples(variant: str) -> list[list[float]]:
    return COUNTDOWN_3 if variant == "countdown_3" else OTHER


@pytest.fixture()
def run(tmp_path: Path):
    make_run(tmp_path / "0", method="sft", rl="grpo_cpu", samples=samples, pre_samples=lambda v: [[0.0] * 4] * 3)
    (run,) = collect(tmp_path).runs
    return run


def test_metrics_per_question(run) -> None:
    q = lambda i: ("countdown_3-%d" % i, f"question {i}")  # noqa: E731 - (item_id, question text)
    assert question_scores(run, "", "countdown_3", "mean@4") == {q(0): 0.5, q(1): 1.0, q(2): 0.0}
    # pass@1 is the share of correct samples; pass@4 whether any of the 4 is; greedy the greedy sample's score
    assert question_scores(run, "", "countdown_3", "pass@1") == {q(0): 0.5, q(1): 1.0, q(2): 0.0}
    assert question_scores(run, "", "countdown_3", "pass@4") == {q(0): 1.0, q(1): 1.0, q(2): 0.0}
    assert question_scores(run, "", "countdown_3", "greedy") == {q(0): 1.0, q(1): 1.0, q(2): 0.0}
    # the fake eval stops every sample that scored 0 at the length limit
    assert question_scores(run, "", "countdown_3", "truncation_rate") == {q(0): 0.5, q(1): 0.0, q(2): 1.0}
    # ... and with no answer found: the format failures, per question
    assert question_scores(run, "", "countdown_3", "no_answer_rate") == {q(0): 0.5, q(1): 0.0, q(2): 1.0}
    assert question_scores(run, "pre_rl/", "countdown_3", "mean@4") == {q(0): 0.0, q(1): 0.0, q(2): 0.0}
    assert len(question_scores(run, "", "multiplication_1", "mean@4")) == 2


def test_no_per_question_scores(run) -> None:
    """A metric the file cannot give, a missing file, or a file that does not reproduce the summary: None."""
    assert question_scores(run, "", "countdown_3", "mean_tokens") is None
    assert question_scores(run, "", "countdown_3", "mean@4_unforced") is None
    assert question_scores(run, "", "countdown_3", "pass@8") is None  # more than the samples there are
    assert question_scores(run, "", "countdown_3", "mean@2") is None  # not this eval's k
    path = run.path / "eval" / "generations" / "countdown_3.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "score": 1.0}) + "\n" for r in rows))  # not what the summary says
    assert question_scores(run, "", "countdown_3", "mean@4") is None
    path.unlink()  # e.g. a cleaned stage cache
    assert question_scores(run, "", "countdown_3", "mean@4") is None
    assert question_scores(run, "", "countdown_4", "mean@4") is not None


def test_pooled_count(run) -> None:
    """Outcomes behind a proportion: questions × k samples for mean@k and truncation, questions for pass@p and
    greedy (num_items from the summary: 3 questions)."""
    assert pooled_count(run, "", "countdown_3", "mean@4") == 12
    assert pooled_count(run, "", "countdown_3", "mean@4_unforced") == 12  # the same samples, before forcing
    assert pooled_count(run, "", "countdown_3", "truncation_rate") == 12
    assert pooled_count(run, "", "countdown_3", "no_answer_rate") == 12
    assert pooled_count(run, "", "countdown_3", "pass@4") == 3
    assert pooled_count(run, "pre_rl/", "countdown_3", "greedy") == 3
    assert pooled_count(run, "", "countdown_3", "mean_tokens") is None


@pytest.mark.parametrize("metric,expected", [("mean@4", True), ("mean@16_unforced", True), ("pass@1", True),
                                             ("greedy", True), ("truncation_rate", True), ("no_answer_rate", True),
                                             ("mean_tokens", False),
                                             ("verdict_correct_f1", False), ("answers_per_completion", False)])
def test_is_proportion(metric: str, expected: bool) -> None:
    assert is_proportion(metric) is expected
