"""The report on runs with per-question scores: bootstrap intervals inside [0, 1], paired comparisons with a
baseline on the same seeds and questions (numbers and sentences by hand), `--baseline`, and the W&B keys."""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import pytest

from skillexp.report.cli import main, write_report
from skillexp.report.collect import collect
from skillexp.report.compare import compare
from skillexp.report.publish import key_part
from skillexp.report.stats import newcombe
from skillexp.report.tables import build_rows
from tests.report.fake_runs import VARIANTS, make_run

REST = [[1.0, 0.0, 0.0, 0.0]] * 4  # every variant but countdown_3: 4 questions at 0.25, in every run


def cd3(questions: list[list[float]]):
    """countdown_3 gets these per-question sample scores, every other variant REST."""
    return lambda v: questions if v == "countdown_3" else REST


ZERO, HALF, ONE = [[0.0] * 4] * 4, [[1.0, 1.0, 0.0, 0.0]] * 4, [[1.0] * 4] * 4  # 4 questions each


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paired")
    for seed in (0, 1):
        make_run(root / f"none{seed}", method="none", rl="grpo_cpu", seed=seed, samples=cd3(ZERO))
        # pre-RL: seed 0 gets every countdown_3 question right, seed 1 none
        make_run(root / f"sft{seed}", method="sft", rl="grpo_cpu", seed=seed, samples=cd3(HALF),
                 pre_samples=cd3(ONE if seed == 0 else ZERO))
        make_run(root / f"star{seed}", method="star", rl="grpo_cpu", seed=seed,  # no generations
                 score=lambda v, s=seed: 0.3 + 0.2 * s if v == "countdown_3" else 0.25, pre_score=lambda v: 0.0)
    make_run(root / "sf0", method="skillfactory", rl="grpo_cpu", seed=0, samples=cd3(ONE), pre_samples=cd3(ZERO))
    return root


@pytest.fixture(scope="module")
def report(sweep: Path):
    return write_report(collect(sweep), sweep / "report", "mean@k")


def read(path: Path, *key: str) -> dict[tuple[str, ...], dict[str, str]]:
    with open(path) as f:
        return {tuple(r[k] for k in key): r for r in csv.DictReader(f)}


def test_bootstrap_cells_stay_in_the_unit_interval(sweep: Path, report) -> None:
    cells = read(sweep / "report" / "results.csv", "row", "variant", "metric")
    # the two seeds disagree completely: mean 0.5, std 0.707, so the t interval was 0.5 ± 6.35; the bootstrap
    # draws seed 0 twice (1/4), once (1/2) or never (1/4): [0, 1]
    pre = cells[("sft (pre-RL)", "countdown_3", "mean@4")]
    assert (float(pre["mean"]), float(pre["std"])) == (pytest.approx(0.5), pytest.approx(math.sqrt(0.5)))
    assert (pre["ci95_method"], float(pre["ci95_low"]), float(pre["ci95_high"])) == ("bootstrap", 0.0, 1.0)
    same = cells[("sft → grpo_cpu", "countdown_3", "mean@4")]  # every question 0.5 in both seeds
    assert (same["ci95_method"], float(same["ci95_low"]), float(same["ci95_high"])) == ("bootstrap", 0.5, 0.5)
    assert cells[("star → grpo_cpu", "countdown_3", "mean@4")]["ci95_method"] == "wilson"
    one_seed = cells[("skillfactory → grpo_cpu", "avg", "mean@4")]
    assert (one_seed["n"], one_seed["std"], one_seed["ci95_method"]) == ("1", "", "bootstrap")
    for cell in cells.values():
        if cell["metric"] == "mean@4":
            assert 0.0 <= float(cell["ci95_low"]) <= float(cell["mean"]) <= float(cell["ci95_high"]) <= 1.0, cell
    md = (sweep / "report" / "results.md").read_text()
    assert "| sft (pre-RL) | 0.500 ± 0.707 [0.000, 1.000]ᵇ n=2 |" in md
    assert "ᵇ two-level percentile bootstrap" in md and "ʷ Wilson score interval" in md


def test_paired_comparisons(sweep: Path, report) -> None:
    rows = read(sweep / "report" / "comparisons.csv", "row", "baseline", "variant")
    c = rows[("sft → grpo_cpu", "none → grpo_cpu", "countdown_3")]
    assert (float(c["diff"]), float(c["ci95_low"]), float(c["ci95_high"])) == (0.5, 0.5, 0.5)
    assert (c["ci95_method"], c["seeds"], c["questions"]) == ("bootstrap", "0 1", "4 4")
    avg = rows[("sft → grpo_cpu", "none → grpo_cpu", "avg")]
    assert (float(avg["diff"]), avg["questions"]) == (pytest.approx(0.5 / len(VARIANTS)), "28 28")
    pre = rows[("sft (pre-RL)", "none (pre-RL)", "countdown_3")]  # +1 on seed 0, 0 on seed 1
    assert (float(pre["diff"]), float(pre["ci95_low"]), float(pre["ci95_high"])) == (0.5, 0.0, 1.0)
    # star has no generations: 0.3 and 0.5 against 0 on seeds 0 and 1; Newcombe's interval from the pooled counts,
    # 2 seeds × 3 questions × 4 samples (star's summaries) against 2 × 4 × 4 (none's)
    star = rows[("star → grpo_cpu", "none → grpo_cpu", "countdown_3")]
    low, high = newcombe(0.4 * 24, 24, 0, 32)
    assert (star["ci95_method"], float(star["diff"]), float(star["ci95_low"]), float(star["ci95_high"])) == (
        "newcombe", pytest.approx(0.4), pytest.approx(low), pytest.approx(high))
    assert 0 < low < 0.4 < high < 1
    assert ("none → grpo_cpu", "none → grpo_cpu", "countdown_3") not in rows  # the baseline itself

    md = (sweep / "report" / "results.md").read_text()
    assert "| sft → grpo_cpu − none → grpo_cpu | +0.500 [+0.500, +0.500]ᵇ n=2×4 |" in md
    for sentence in [
        "sft → grpo_cpu vs none → grpo_cpu on countdown_3: higher by 0.500 [+0.500, +0.500] over 2 seeds × 4 "
        "questions: the interval excludes 0, so the data supports a difference on these questions; with only 2 "
        "seeds it says little about other seeds.",
        "sft (pre-RL) vs none (pre-RL) on countdown_3: +0.500 [+0.000, +1.000] over 2 seeds × 4 questions: the "
        "interval includes 0, so this data cannot tell them apart.",
        f"star → grpo_cpu vs none → grpo_cpu on countdown_3: higher by 0.400 [+{low:.3f}, +{high:.3f}] over 2 "
        "seeds (no per-question scores: pooled counts, unpaired, samples taken as independent): the interval "
        "excludes 0, so the data supports a difference on these questions; with only 2 seeds it says little about "
        "other seeds.",
        "sft → grpo_cpu vs none → grpo_cpu on multiplication_2: the same score on every paired question over 2 "
        "seeds × 4 questions, so this data shows no difference.",
        "skillfactory → grpo_cpu vs none → grpo_cpu on countdown_3: higher by 1.000 [+1.000, +1.000] over 1 "
        "seed × 4 questions: the interval excludes 0, so the data supports a difference on these questions; with one "
        "seed it covers the choice of questions only, not seed-to-seed variation.",
    ]:
        assert f"- {sentence}\n" in md


def test_questions_are_matched_by_id(tmp_path: Path) -> None:
    """A baseline that scored only 3 of the 4 questions: the difference is over the 3 both have."""
    make_run(tmp_path / "a", method="sft", samples=cd3([[1.0] * 4, [1.0] * 4, [0.0] * 4, [1.0] * 4]))
    make_run(tmp_path / "b", method="none", samples=cd3([[0.0] * 4, [1.0] * 4, [0.0] * 4]))
    rows = {r.label: r for r in build_rows(collect(tmp_path).runs)}
    c = compare(rows["sft"], rows["none"], "countdown_3", VARIANTS, "mean@k")
    assert (c.diff, c.questions, c.seeds, c.interval) == (pytest.approx(1 / 3), (3,), (0,), "bootstrap")


def test_baseline_flag(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(sweep), "--baseline", "sft", "--out", str(tmp_path), "--wandb", "off"]) == 0
    rows = read(tmp_path / "comparisons.csv", "row", "baseline", "variant")
    c = rows[("none → grpo_cpu", "sft → grpo_cpu", "countdown_3")]
    assert (float(c["diff"]), c["ci95_method"]) == (-0.5, "bootstrap")
    md = (tmp_path / "results.md").read_text()
    assert "### Paired comparisons with `sft` (mean@4)" in md
    assert "none → grpo_cpu vs sft → grpo_cpu on countdown_3: lower by 0.500 [−0.500, −0.500]" in md
    capsys.readouterr()
    assert main([str(sweep), "--baseline", "nope", "--out", str(tmp_path), "--wandb", "off"]) == 2
    assert "no run has method 'nope': pass --baseline with one of ['none', 'sft', 'skillfactory', 'star']" in (
        capsys.readouterr().err)


def test_wandb_summary_keys(report) -> None:
    """Slugs without spaces or arrows: `<row>/<variant>/<metric>` for cells, `compare/<row>_vs_<baseline>/...`."""
    assert [k for k in report.summary if not re.fullmatch(r"[A-Za-z0-9_/-]+", k)] == []
    assert report.summary["sft-grpo_cpu/countdown_3/mean_at_4"] == pytest.approx(0.5)
    assert report.summary["sft-pre_rl/countdown_3/mean_at_4_ci95_high"] == 1.0
    assert report.summary["compare/sft-grpo_cpu_vs_none-grpo_cpu/countdown_3/mean_at_4_diff"] == 0.5
    assert report.summary["compare/sft-pre_rl_vs_none-pre_rl/avg/mean_at_4_diff_ci95_low"] >= 0.0
    assert "compare/star-grpo_cpu_vs_none-grpo_cpu/countdown_3/mean_at_4_diff_ci95_high" in report.summary


@pytest.mark.parametrize("text,key", [("skillfactory → grpo", "skillfactory-grpo"), ("none (pre-RL)", "none-pre_rl"),
                                      ("mean@k", "mean_at_k"), ("pass@4", "pass_at_4"),
                                      ("sft [method.sft.max_steps=4]", "sft_method_sft_max_steps_4"),
                                      ("model.name=smollm2-135m-instruct", "model_name_smollm2-135m-instruct"),
                                      ("  ", "_")])
def test_key_part(text: str, key: str) -> None:
    assert key_part(text) == key
