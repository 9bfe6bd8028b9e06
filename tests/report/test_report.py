"""The report on a sweep with known numbers: table cells against hand-computed statistics, pre-RL rows, settings,
figures, bad input, the CLI entry points and the W&B report run (offline). These runs have no generations, so
their accuracy intervals are Wilson intervals of the pooled count; tests/report/test_paired.py covers runs with
per-question scores (bootstrap intervals and paired comparisons)."""
from __future__ import annotations

import csv
import json
import math
import re
import statistics
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp.report.cli import main
from skillexp.report.collect import collect
from skillexp.report.publish import report_logger
from skillexp.report.stats import newcombe, wilson
from tests.conftest import subprocess_env
from tests.report.fake_runs import VARIANTS, make_run

ROOT = Path(__file__).resolve().parents[2]
T2, T1 = 4.3027, 12.7062  # t_{0.975} with 2 and 1 degrees of freedom
QUESTIONS, K = 3, 4  # num_items and samples per question in the fake runs' summaries
WANDB_KEY = r"^[A-Za-z0-9_/-]+$"


def cd3(value: float, rest: float = 0.5):
    """countdown_3 scores `value`, every other variant `rest`."""
    return lambda v: value if v == "countdown_3" else rest


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for seed, score in enumerate((0.2, 0.4, 0.6)):
        make_run(root / f"{seed}-sft", method="sft", seed=seed, score=cd3(score))
    for seed, (pre, post, rewards) in enumerate([(0.1, 0.5, [0.1, 0.2, 0.3]), (0.3, 0.7, [0.3, 0.4])]):
        make_run(root / f"{seed}-sf", method="skillfactory", rl="grpo_cpu", seed=seed, score=cd3(post),
                 pre_score=cd3(pre), rewards=rewards)
    for seed in (0, 1):  # two RL stages after the same SFT: one pre-RL row with one value per seed
        make_run(root / f"{seed}-sft-grpo", method="sft", rl="grpo_cpu", seed=seed, score=cd3(0.3),
                 pre_score=cd3(0.25 + seed / 10))
        make_run(root / f"{seed}-sft-dapo", method="sft", rl="dapo", seed=seed, score=cd3(0.35),
                 pre_score=cd3(0.25 + seed / 10))
    make_run(root / "0-none", method="none", rl="grpo_cpu", score=cd3(0.15), pre_score=cd3(0.05), rewards=[0.0])
    make_run(root / "9-unfinished", method="star", seed=9, finished=False)
    return root


@pytest.fixture(scope="module")
def table(sweep: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    assert main([str(sweep), "--wandb", "off"]) == 0
    with open(sweep / "report" / "results.csv") as f:
        return {(r["row"], r["variant"], r["metric"]): r for r in csv.DictReader(f)}


def check(cell: dict[str, str], n: int, mean: float, std: float | None, t: float | None = None,
          pooled: int | None = None) -> None:
    """A cell's seeds, mean and std, and its interval: Wilson of `pooled` outcomes, else the t interval with
    quantile `t` (none for one seed)."""
    assert int(cell["n"]) == n
    assert float(cell["mean"]) == pytest.approx(mean)
    assert cell["std"] == "" if std is None else float(cell["std"]) == pytest.approx(std)
    if pooled is not None:
        low, high = wilson(mean * pooled, pooled)
        assert cell["ci95_method"] == "wilson"
    elif std is None:
        assert cell["ci95_low"] == cell["ci95_high"] == cell["ci95_method"] == ""
        return
    else:
        half = t * std / math.sqrt(n)
        low, high = mean - half, mean + half
        assert cell["ci95_method"] == "t"
    assert (float(cell["ci95_low"]), float(cell["ci95_high"])) == (pytest.approx(low), pytest.approx(high))
    assert 0 <= low <= high <= 1 or cell["ci95_method"] == "t"


def test_cells_against_hand_computed_statistics(table) -> None:
    # accuracies: Wilson of the pooled count, questions × samples × seeds (no per-question scores here)
    check(table[("sft", "countdown_3", "mean@4")], 3, 0.4, 0.2, pooled=QUESTIONS * K * 3)
    assert table[("sft", "countdown_3", "mean@4")]["seeds"] == "0 1 2"
    check(table[("sft", "countdown_4", "mean@4")], 3, 0.5, 0.0, pooled=QUESTIONS * K * 3)
    # avg: each run's mean over the 7 variants (countdown_3 + six at 0.5), then over seeds; pooled over variants
    per_run = [(s + 6 * 0.5) / len(VARIANTS) for s in (0.2, 0.4, 0.6)]
    check(table[("sft", "avg", "mean@4")], 3, sum(per_run) / 3, 0.2 / len(VARIANTS),
          pooled=len(VARIANTS) * QUESTIONS * K * 3)
    check(table[("skillfactory → grpo_cpu", "countdown_3", "mean@4")], 2, 0.6, math.sqrt(0.02), pooled=24)
    check(table[("none → grpo_cpu", "countdown_3", "mean@4")], 1, 0.15, None, pooled=12)  # one seed: an interval


def test_pre_rl_rows(table) -> None:
    check(table[("skillfactory (pre-RL)", "countdown_3", "mean@4")], 2, 0.2, math.sqrt(0.02), pooled=24)
    check(table[("none (pre-RL)", "countdown_3", "mean@4")], 1, 0.05, None, pooled=12)
    # grpo_cpu and dapo after the same SFT share one pre-RL row: seeds 0 and 1 once each, not twice
    check(table[("sft (pre-RL)", "countdown_3", "mean@4")], 2, 0.3, math.sqrt(0.005), pooled=24)
    assert table[("sft (pre-RL)", "countdown_3", "mean@4")]["stage"] == "pre_rl"
    assert table[("sft → dapo", "countdown_3", "mean@4")]["rl"] == "dapo"


def test_skill_use_cells(table) -> None:
    """Not proportions: the t interval over seeds; an F1 cannot leave [0, 1], so its t interval is cut to it."""
    check(table[("sft", "countdown_3", "answers_per_completion")], 3, 1.4, 0.2, T2)
    f1 = table[("skillfactory → grpo_cpu", "multiplication_2", "verdict_correct_f1")]
    assert (f1["ci95_method"], f1["ci95_low"], f1["ci95_high"]) == ("t_clipped", "0.5", "0.5")


def test_markdown(sweep: Path, table) -> None:
    md = (sweep / "report" / "results.md").read_text()
    table_lines = md.split("### mean@4\n\n")[1].split("\n\n")[0].splitlines()[2:]
    main_table = [line.split(" | ")[0][2:] for line in table_lines]
    assert main_table == ["none (pre-RL)", "none → grpo_cpu", "sft", "sft (pre-RL)", "sft → dapo",
                          "sft → grpo_cpu", "skillfactory (pre-RL)", "skillfactory → grpo_cpu"]
    low, high = wilson(0.4 * 36, 36)
    assert f"| sft | 0.400 ± 0.200 [{low:.3f}, {high:.3f}]ʷ n=3 |" in md
    low, high = wilson(0.15 * 12, 12)
    assert f"| 0.150 [{low:.3f}, {high:.3f}]ʷ n=1 |" in md  # one seed: no std, but the questions give an interval
    assert "ʷ Wilson score interval of the pooled count" in md and "ᵗ mean ± t(0.975, n−1)" in md
    assert "ᵇ two-level" not in md  # no cell here has per-question scores
    assert "### mean@4" in md and "9-unfinished" in md.split("## Skipped")[1]
    # beside the scores, the share of samples without an answer where the prompt asked for one
    no_answer = md.split("### No answer found (no_answer_rate)\n\n")[1].split("\n\n")[1].splitlines()[2:]
    assert [line.split(" | ")[0][2:] for line in no_answer] == main_table
    assert no_answer[2].startswith("| sft | 0.050 ± 0.000 [")
    for name in ("accuracy", "skill_use", "rewards"):
        assert f"![{name}]({name}.png)" in md
    # the sft → grpo_cpu / dapo runs logged no RL steps (as when their RL stage came from the stage cache)
    assert "No `rl/reward_mean` steps in the metrics.jsonl of 4 RL run(s)" in md and "`0-sft-dapo`" in md


def test_comparisons_without_per_question_scores(sweep: Path, table, tmp_path: Path) -> None:
    """The difference of the summary values on the seeds both rows have; for accuracies Newcombe's interval of
    the pooled counts, for other metrics the t interval over the per-seed differences (none from one seed)."""
    md = (sweep / "report" / "results.md").read_text()
    with open(sweep / "report" / "comparisons.csv") as f:
        rows = {(r["row"], r["baseline"], r["variant"]): r for r in csv.DictReader(f)}
    # skillfactory (pre-RL) − none (pre-RL) on countdown_3: only seed 0 is in both rows, 0.1 against 0.05
    one = rows[("skillfactory (pre-RL)", "none (pre-RL)", "countdown_3")]
    low, high = newcombe(0.1 * 12, 12, 0.05 * 12, 12)
    assert (one["seeds"], float(one["diff"]), one["ci95_method"]) == ("0", pytest.approx(0.05), "newcombe")
    assert (float(one["ci95_low"]), float(one["ci95_high"])) == (pytest.approx(low), pytest.approx(high))
    assert (f"skillfactory (pre-RL) vs none (pre-RL) on countdown_3: +0.050 [−{-low:.3f}, +{high:.3f}] over 1 seed "
            "(no per-question scores: pooled counts, unpaired, samples taken as independent): the interval "
            "includes 0, so this data cannot tell them apart.") in md
    # `sft` (no RL) is compared with the base model, `none (pre-RL)`, on the seed they share
    assert rows[("sft", "none (pre-RL)", "countdown_3")]["seeds"] == "0"
    assert "### Paired comparisons with `none` (mean@4)" in md
    assert "No `none` row after the same RL stage to compare with: `sft → dapo`." in md
    # not a proportion (--metric answers_per_completion): t over per-seed differences, none from one seed
    out = tmp_path
    assert main([str(sweep), "--metric", "answers_per_completion", "--out", str(out), "--wandb", "off"]) == 0
    with open(out / "comparisons.csv") as f:
        rows = {(r["row"], r["baseline"], r["variant"]): r for r in csv.DictReader(f)}
    one = rows[("skillfactory (pre-RL)", "none (pre-RL)", "countdown_3")]
    assert (float(one["diff"]), one["ci95_method"], one["ci95_low"]) == (pytest.approx(0.05), "", "")
    assert ("skillfactory (pre-RL) vs none (pre-RL) on countdown_3: +0.050 from 1 seed (no per-question scores: "
            "paired by seed only), with no interval from one seed: this data cannot say whether they differ."
            ) in (out / "results.md").read_text()


def test_figures_are_written(sweep: Path, table) -> None:
    for name in ("accuracy", "skill_use", "rewards"):
        data = (sweep / "report" / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_other_metric_and_out_dir(sweep: Path, tmp_path: Path) -> None:
    assert main([str(sweep), "--metric", "greedy", "--out", str(tmp_path), "--wandb", "off"]) == 0
    with open(tmp_path / "results.csv") as f:
        rows = {(r["row"], r["variant"], r["metric"]): r for r in csv.DictReader(f)}
    # greedy = mean@4 / 2 in these runs, one greedy answer per question
    check(rows[("sft", "countdown_3", "greedy")], 3, 0.2, 0.1, pooled=QUESTIONS * 3)
    assert "### greedy" in (tmp_path / "results.md").read_text()
    assert main([str(sweep), "--metric", "pass@k", "--out", str(tmp_path), "--wandb", "off"]) == 0
    with open(tmp_path / "results.csv") as f:
        rows = {(r["row"], r["variant"], r["metric"]): r for r in csv.DictReader(f)}
    pass_4 = [min(1.0, 2 * s) for s in (0.2, 0.4, 0.6)]  # pass@4 = min(1, 2 · mean@4) in these runs
    check(rows[("sft", "countdown_3", "pass@4")], 3, sum(pass_4) / 3, statistics.stdev(pass_4), pooled=QUESTIONS * 3)
    # a skill-use metric as the main one is not listed twice
    assert main([str(sweep), "--metric", "reflections_per_completion", "--out", str(tmp_path), "--wandb", "off"]) == 0
    with open(tmp_path / "results.csv") as f:
        keys = [(r["row"], r["variant"], r["metric"]) for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys))


def test_settings_get_their_own_sections_and_figures(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path / f"tiny{seed}", seed=seed, score=cd3(0.2 + seed / 10))
        make_run(tmp_path / f"smol{seed}", seed=seed, score=cd3(0.6 + seed / 10), extra=("model=smollm2_135m",))
    assert main([str(tmp_path), "--wandb", "off"]) == 0
    out = tmp_path / "report"
    md = (out / "results.md").read_text()
    assert "## model.name=tiny" in md and "## model.name=smollm2-135m-instruct" in md
    assert (out / "accuracy_tiny.png").exists() and (out / "accuracy_smollm2-135m-instruct.png").exists()
    with open(out / "results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == "countdown_3" and r["metric"] == "mean@4"]
    assert {(r["model.name"], r["n"], round(float(r["mean"]), 6)) for r in rows} == {
        ("tiny", "2", 0.25), ("smollm2-135m-instruct", "2", 0.65)}
    # the run list names each run's setting; these fake runs have no job.json or timing.json: every figure is "–"
    assert "| sft | none | 0 | model.name=tiny | " + "– | " * 10 + "`tiny0` |" in md


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err
    make_run(tmp_path / "0")
    assert main([str(tmp_path), "--metric", "accuracy", "--wandb", "off"]) == 2
    err = capsys.readouterr().err
    assert "no run has metric 'accuracy'" in err and "mean@k" in err and "greedy" in err
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2


def cli(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300, env=subprocess_env(**env))


@pytest.mark.long  # the documented `skillexp report` commands run in test_docs_commands
def test_cli_entry_points(sweep: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "skillexp"  # the console script, as installed
    for i, command in enumerate([[str(script), "report"], [sys.executable, "-m", "skillexp", "report"],
                                 [sys.executable, "-m", "skillexp.report"]]):
        proc = cli([*command, str(sweep), "--out", str(tmp_path / str(i)), "--wandb", "off"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "| sft | 0.400 ± 0.200 [" in proc.stdout
        assert "skipping unfinished run" in proc.stderr
        assert (tmp_path / str(i) / "results.md").exists()
    bad = cli([str(script), "report", str(tmp_path / "missing")])
    assert bad.returncode == 2 and "is not a directory" in bad.stderr


def wandb_summary(run: Path) -> dict[str, object]:
    """The summary values an offline W&B run holds, read from its `.wandb` log: LevelDB-log framing (a 7-byte file
    header, then in 32 KiB blocks records of crc32 · length · type, type 1 whole, 2-4 first/middle/last part) of
    protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run.glob("*.wandb")
    data, block, pos, part, summary = path.read_bytes(), 32768, 7, b"", {}
    while pos + 7 <= len(data):
        if (left := block - pos % block) < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        part, pos = part + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(part)
            part = b""
            if record.WhichOneof("record_type") == "summary":
                summary.update({u.key or "/".join(u.nested_key): json.loads(u.value_json)
                                for u in record.summary.update})
    return summary


def test_wandb_offline_report_run(sweep: Path, tmp_path: Path) -> None:
    """The runs logged to W&B (offline), so the report becomes an offline W&B run with the tables, the figures and
    summary values, under keys without spaces or arrows."""
    proc = cli([sys.executable, "-m", "skillexp", "report", str(sweep), "--out", str(tmp_path)], WANDB_MODE="offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (table_file,) = (run / "files" / "media" / "table" / "report").glob("results_*.table.json")
    logged = json.loads(table_file.read_text())
    assert "mean" in logged["columns"] and "ci95_method" in logged["columns"]
    assert any(row[0] == "sft" for row in logged["data"])
    (comparisons,) = (run / "files" / "media" / "table" / "report").glob("comparisons_*.table.json")
    columns = logged["columns"] + json.loads(comparisons.read_text())["columns"]
    images = {p.name.split("_")[0] for p in (run / "files" / "media" / "images" / "report").glob("*.png")}
    assert images == {"accuracy", "skill", "rewards"}
    summary = wandb_summary(run)
    assert summary["sft/countdown_3/mean_at_4"] == pytest.approx(0.4)
    assert summary["compare/sft-grpo_cpu_vs_none-grpo_cpu/countdown_3/mean_at_4_diff"] == pytest.approx(0.15)
    keys = [k for k in summary if not k.startswith("_")] + columns
    assert [k for k in keys if not re.match(WANDB_KEY, k)] == []


def test_report_run_joins_the_runs_group(sweep: Path) -> None:
    runs = collect(sweep).runs
    logger = report_logger(runs, sweep, "offline")
    assert (logger.job_type, logger.group, logger.mode) == ("report", "tiny", "offline")  # their logger.group


@pytest.mark.slow
@pytest.mark.long  # the papers' suites test runs a real multirun and its report in the suite
def test_report_on_a_real_multirun(tmp_path: Path) -> None:
    """A real Hydra multirun of two seeds, then the report over its dir."""
    proc = cli([sys.executable, "-m", "skillexp", "-m", "seed=0,1", "experiment=smoke", "logger=none",
                f"hydra.sweep.dir={tmp_path}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = cli([sys.executable, "-m", "skillexp", "report", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "report" / "results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "mean@2"]
    assert {(r["row"], r["n"], r["seeds"]) for r in rows} == {("sft", "2", "0 1")}
    # the eval stage's generations reproduce its metrics, so the intervals come from the per-question scores
    assert {r["ci95_method"] for r in rows} == {"bootstrap"}
    assert all(0 <= float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"]) <= 1 for r in rows)
    assert not (tmp_path / "report" / "wandb").exists()  # the runs logged no W&B, so neither does the report
    # the run table: where each run's time went (timing.json) and its own peak RSS, though both ran in one process
    md = (tmp_path / "report" / "results.md").read_text()
    runs = [line for line in md.split("## Runs")[1].splitlines() if line.startswith("| sft |")]
    assert len(runs) == 2
    header = next(line for line in md.split("## Runs")[1].splitlines() if line.startswith("| method |"))
    assert header.split(" | ")[3:13] == ["minutes", "engines s", "SFT data s", "SFT s", "rollout s", "update s",
                                         "RL other s", "evals s", "other s", "peak RSS GiB"]
    for line in runs:
        cells = line.split(" | ")
        assert all(float(c) >= 0 for c in cells[4:12])  # whole seconds: the tiny model's stages may round to 0
        assert 0.3 < float(cells[12]) < 20  # peak RSS GiB
    for run in tmp_path.glob("*-sft-*"):
        timing = json.loads((run / "timing.json").read_text())
        assert abs(sum(timing["phases_s"].values()) - timing["wall_s"]) < 0.1
        assert timing["phases_s"]["sft"] > 0 and timing["phases_s"]["eval"] > 0
