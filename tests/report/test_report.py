"""The report on a sweep with known numbers: table cells against hand-computed statistics, pre-RL rows, settings,
figures, bad input, the CLI entry points and the W&B report run (offline)."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp.report.cli import main
from skillexp.report.collect import collect
from skillexp.report.cli import report_logger
from tests.conftest import subprocess_env
from tests.report.fake_runs import VARIANTS, make_run

ROOT = Path(__file__).resolve().parents[2]
T2, T1 = 4.3027, 12.7062  # t_{0.975} with 2 and 1 degrees of freedom


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


def check(cell: dict[str, str], n: int, mean: float, std: float | None, t: float | None = None) -> None:
    assert int(cell["n"]) == n
    assert float(cell["mean"]) == pytest.approx(mean)
    if std is None:
        assert cell["std"] == cell["ci95_low"] == cell["ci95_high"] == ""
        return
    half = t * std / math.sqrt(n)
    assert float(cell["std"]) == pytest.approx(std)
    assert (float(cell["ci95_low"]), float(cell["ci95_high"])) == (pytest.approx(mean - half),
                                                                   pytest.approx(mean + half))


def test_cells_against_hand_computed_statistics(table) -> None:
    check(table[("sft", "countdown_3", "mean@4")], 3, 0.4, 0.2, T2)
    assert table[("sft", "countdown_3", "mean@4")]["seeds"] == "0 1 2"
    check(table[("sft", "countdown_4", "mean@4")], 3, 0.5, 0.0, T2)
    # avg: each run's mean over the 7 variants (countdown_3 + six at 0.5), then over seeds
    per_run = [(s + 6 * 0.5) / len(VARIANTS) for s in (0.2, 0.4, 0.6)]
    check(table[("sft", "avg", "mean@4")], 3, sum(per_run) / 3, 0.2 / len(VARIANTS), T2)
    check(table[("skillfactory → grpo_cpu", "countdown_3", "mean@4")], 2, 0.6, math.sqrt(0.02), T1)
    check(table[("none → grpo_cpu", "countdown_3", "mean@4")], 1, 0.15, None)


def test_pre_rl_rows(table) -> None:
    check(table[("skillfactory (pre-RL)", "countdown_3", "mean@4")], 2, 0.2, math.sqrt(0.02), T1)
    check(table[("none (pre-RL)", "countdown_3", "mean@4")], 1, 0.05, None)
    # grpo_cpu and dapo after the same SFT share one pre-RL row: seeds 0 and 1 once each, not twice
    check(table[("sft (pre-RL)", "countdown_3", "mean@4")], 2, 0.3, math.sqrt(0.005), T1)
    assert table[("sft (pre-RL)", "countdown_3", "mean@4")]["stage"] == "pre_rl"
    assert table[("sft → dapo", "countdown_3", "mean@4")]["rl"] == "dapo"


def test_skill_use_cells(table) -> None:
    check(table[("sft", "countdown_3", "answers_per_completion")], 3, 1.4, 0.2, T2)
    check(table[("sft", "multiplication_2", "verdict_correct_f1")], 3, 0.5, 0.0, T2)


def test_markdown(sweep: Path, table) -> None:
    md = (sweep / "report" / "results.md").read_text()
    labels = [line.split(" | ")[0][2:] for line in md.splitlines() if line.startswith("| ") and "n=" in line]
    main_table = labels[: labels.index("none (pre-RL)", 1)]  # the skill-use table repeats the rows
    assert main_table == ["none (pre-RL)", "none → grpo_cpu", "sft", "sft (pre-RL)", "sft → dapo", "sft → grpo_cpu",
                          "skillfactory (pre-RL)", "skillfactory → grpo_cpu"]
    half = T2 * 0.2 / math.sqrt(3)
    assert f"| sft | 0.400 ± 0.200 [{0.4 - half:.3f}, {0.4 + half:.3f}] n=3 |" in md
    assert "0.150 (n=1)" in md
    assert "### mean@4" in md and "9-unfinished" in md.split("## Skipped")[1]
    for name in ("accuracy", "skill_use", "rewards"):
        assert f"![{name}]({name}.png)" in md
    # the sft → grpo_cpu / dapo runs logged no RL steps (as when their RL stage came from the stage cache)
    assert "No `rl/reward_mean` steps in the metrics.jsonl of 4 RL run(s)" in md and "`0-sft-dapo`" in md


def test_figures_are_written(sweep: Path, table) -> None:
    for name in ("accuracy", "skill_use", "rewards"):
        data = (sweep / "report" / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_other_metric_and_out_dir(sweep: Path, tmp_path: Path) -> None:
    assert main([str(sweep), "--metric", "greedy", "--out", str(tmp_path), "--wandb", "off"]) == 0
    with open(tmp_path / "results.csv") as f:
        rows = {(r["row"], r["variant"], r["metric"]): r for r in csv.DictReader(f)}
    check(rows[("sft", "countdown_3", "greedy")], 3, 0.2, 0.1, T2)  # greedy = mean@4 / 2 in these runs
    assert "### greedy" in (tmp_path / "results.md").read_text()
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
    assert "| sft | none | 0 | model.name=tiny | – | `tiny0` |" in md  # the run list names each run's setting


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


def test_cli_entry_points(sweep: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "skillexp"  # the console script, as installed
    for i, command in enumerate([[str(script), "report"], [sys.executable, "-m", "skillexp", "report"],
                                 [sys.executable, "-m", "skillexp.report"]]):
        proc = cli([*command, str(sweep), "--out", str(tmp_path / str(i)), "--wandb", "off"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "| sft | 0.400 ± 0.200" in proc.stdout
        assert "skipping unfinished run" in proc.stderr
        assert (tmp_path / str(i) / "results.md").exists()
    bad = cli([str(script), "report", str(tmp_path / "missing")])
    assert bad.returncode == 2 and "is not a directory" in bad.stderr


def test_wandb_offline_report_run(sweep: Path, tmp_path: Path) -> None:
    """The runs logged to W&B (offline), so the report becomes an offline W&B run with the table and figures."""
    proc = cli([sys.executable, "-m", "skillexp", "report", str(sweep), "--out", str(tmp_path)], WANDB_MODE="offline")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (table_file,) = (run / "files" / "media" / "table" / "report").glob("results_*.table.json")
    logged = json.loads(table_file.read_text())
    assert "mean" in logged["columns"] and any(row[0] == "sft" for row in logged["data"])
    images = {p.name.split("_")[0] for p in (run / "files" / "media" / "images" / "report").glob("*.png")}
    assert images == {"accuracy", "skill", "rewards"}


def test_report_run_joins_the_runs_group(sweep: Path) -> None:
    runs = collect(sweep).runs
    logger = report_logger(runs, sweep, "offline")
    assert (logger.job_type, logger.group, logger.mode) == ("report", "tiny", "offline")  # their logger.group


@pytest.mark.slow
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
    assert not (tmp_path / "report" / "wandb").exists()  # the runs logged no W&B, so neither does the report
