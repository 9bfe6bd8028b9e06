"""STAT's SFT recipe (issue 25 item 3): SFT on an engine of its own (QLoRA under a fully fine-tuned GRPO), and the
learning rate chosen per run on the val split from a grid (`method.sft.lr_search`, training/select.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.pipeline import stage_inputs
from skillexp.report.cli import main as report_main
from skillexp.runtime import Runtime
from skillexp.stage_cache import Artifact, StageCache
from skillexp.tasks.scoring import ScoringConfig
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.training.config import SFTInputs
from skillexp.training.select import SELECTION, Candidate, SFTSelectInputs, choose, select_stage
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose
from tests.test_main import run_cli

SEARCH = "method.sft.lr_search={grid:[1e-3,1e-4],variants:[countdown_3],num_items:3}"


def _records(overrides: list[str]) -> dict:
    run = load_run_config(_compose(overrides))
    return stage_inputs(run, StageCache(None, Path("run")), Path("base"))


@pytest.mark.parametrize(("scores", "lr"), [
    ([(1e-3, 0.2), (1e-4, 0.5), (1e-5, 0.1)], 1e-4),
    ([(1e-3, 0.5), (1e-4, 0.5)], 1e-3),  # a tie: the first in grid order
    ([(1e-3, math.nan), (1e-4, 0.0)], 1e-4),  # a score that is not a number never wins
    ([(1e-3, math.nan), (1e-4, math.nan)], 1e-3),
])
def test_the_best_val_score_wins(scores: list[tuple[float, float]], lr: float) -> None:
    assert choose(scores) == lr


def _candidate(root: Path, lr: float, score: float) -> Candidate:
    model, val = root / f"m{lr:g}" / "model", root / f"v{lr:g}"
    (model / "sub").mkdir(parents=True)
    (model / "model.safetensors").write_text(f"weights at {lr:g}")
    (model / "sub" / "tokenizer.json").write_text("{}")
    val.mkdir()
    (val / "eval_metrics.json").write_text(json.dumps({"avg/score": score, "countdown_3/score": score}))
    return Candidate(lr, Artifact(f"k{lr:g}", str(model)), Artifact(f"v{lr:g}", str(val / "eval_metrics.json")))


def _runtime(root: Path) -> Runtime:
    return Runtime(Tracker(LoggerConfig(backend="none"), root, {}), ScoringConfig(workers=0), root, root, root)


def test_the_select_stage_publishes_the_best_model_as_hard_links(tmp_path: Path) -> None:
    cands = tuple(_candidate(tmp_path, lr, s) for lr, s in [(5e-4, 0.25), (2e-4, 0.75), (1e-4, 0.5)])
    model = tmp_path / "out" / "model"
    select_stage(SFTSelectInputs(cands), tmp_path / "out", _runtime(tmp_path))
    assert (model / "model.safetensors").read_text() == "weights at 0.0002"
    src = Path(cands[1].model.path)
    for name in ("model.safetensors", "sub/tokenizer.json"):  # the same files, not copies
        assert (model / name).stat().st_ino == (src / name).stat().st_ino
    record = json.loads((tmp_path / "out" / SELECTION).read_text())
    assert record["chosen_lr"] == 2e-4 and record["split"] == "val"
    assert record["scores"] == [{"lr": 5e-4, "score": 0.25}, {"lr": 2e-4, "score": 0.75}, {"lr": 1e-4, "score": 0.5}]
    # a resumed build (the model dir half written) starts over from the chosen one
    (model / "model.safetensors").unlink()
    select_stage(SFTSelectInputs(cands), tmp_path / "out", _runtime(tmp_path))
    assert (model / "model.safetensors").read_text() == "weights at 0.0002"


def test_a_search_is_one_sft_stage_per_lr_keyed_as_a_plain_run_at_that_lr() -> None:
    plain = _records(["experiment=smoke", "rl=grpo_cpu"])  # smoke trains at lr 1e-3
    searched = _records(["experiment=smoke", "rl=grpo_cpu", SEARCH])
    assert list(searched) == ["sft_data", "sft_lr0.001", "sft_lr0.0001", "sft_val_lr0.001", "sft_val_lr0.0001",
                              "sft_select", "pre_rl", "rl", "eval"]  # no engine holds memory while one trains
    assert searched["sft_lr0.001"].key == plain["sft"].key  # a plain run at a grid lr reuses that candidate
    assert searched["sft_lr0.0001"].sft.optim.lr == 1e-4 and searched["sft_lr0.0001"].key != plain["sft"].key
    val = searched["sft_val_lr0.0001"]
    assert val.suite.split == "val" and list(val.suite.variants) == ["countdown_3"] and val.suite.num_items == 3
    assert val.model_dir.key == searched["sft_lr0.0001"].key
    select = searched["sft_select"]
    assert [(c.lr, c.model.key, c.val.key) for c in select.candidates] == [
        (lr, searched[f"sft_lr{lr:g}"].key, searched[f"sft_val_lr{lr:g}"].key) for lr in (1e-3, 1e-4)]
    assert searched["pre_rl"].model_dir.key == select.key and searched["rl"].start.key == select.key
    other = _records(["experiment=smoke", "rl=grpo_cpu", SEARCH.replace("1e-4", "1e-5")])
    assert other["sft_lr0.001"].key == searched["sft_lr0.001"].key
    assert {n for n in searched if n in other and other[n].key != searched[n].key} == {"sft_select", "pre_rl",
                                                                                         "rl", "eval"}


def test_stat_math_trains_sft_as_the_paper_and_grpo_fully(monkeypatch: pytest.MonkeyPatch) -> None:
    """App. C.1: QLoRA r 16 / alpha 32 / dropout 0.05 on attention and MLP, NF4, paged 8-bit AdamW, 2 per device x 4
    = 8, 3 epochs, cosine, 3% warm-up, clip 0.3, weight decay 0.1, the lr per method from the grid by MATH
    accuracy on validation; GRPO on the run's full fine-tuning engine."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")
    run = load_run_config(_compose(["experiment=stat_math"]))
    sft = run.method.sft
    engine = sft.engine(run.trainer)
    assert engine.name == "qlora" and engine.num_processes == 1 and engine.zero_stage == 0
    lora = engine.lora
    assert (lora.r, lora.alpha, lora.dropout, lora.quantize, lora.optimizer) == (16, 32, 0.05, "nf4",
                                                                                  "paged_adamw_8bit")
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert engine.micro_batch_size == 2 and sft.batch_size == 8 and sft.grad_accum(engine, 1) == 4
    o = sft.optim
    assert (sft.epochs, o.schedule, o.warmup_ratio, o.grad_clip, o.weight_decay) == (3, "cosine", 0.03, 0.3, 0.1)
    assert sft.lr_search.grid == [5e-4, 2e-4, 1e-4, 8e-5, 2e-5] and sft.lr_search.variants == ["math"]
    assert run.trainer.lora is None and run.trainer.name == "zero2"  # GRPO: a full fine-tune
    records = stage_inputs(run, StageCache(None, Path("run")), Path("base"))
    trained = [r for r in records.values() if isinstance(r, SFTInputs)]
    assert len(trained) == 5 and all(r.trainer.lora == lora for r in trained)
    assert records["rl"].trainer.lora is None and records["rl"].start.key == records["sft_select"].key
    assert records["sft_val_lr0.0005"].suite.split == "val" and records["sft_val_lr0.0005"].suite.num_items is None


@pytest.mark.parametrize(("override", "expected"), [
    ("method.sft.lr_search={grid:[]}", "lr_search.grid is empty"),
    ("method.sft.lr_search={grid:[1e-3,1e-3]}", "lists a learning rate twice"),
    ("method.sft.lr_search={grid:[1e-3],variants:[countdown_9]}", "names 'countdown_9', which is not a variant"),
    ("method.sft.lr_search={grid:[-1e-3]}", "method.sft.lr_search.grid"),
])
def test_a_bad_search_is_refused_at_start_up(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(["experiment=smoke", override]))
    assert expected in str(e.value)


def test_a_search_cannot_decide_on_a_difficult_subset_of_the_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")
    with pytest.raises(ConfigError, match="'mathd', a difficult subset of the test split"):
        load_run_config(_compose(["experiment=stat_math", "method.sft.lr_search.variants=[mathd]"]))


def test_sft_on_its_own_engine_is_checked_on_its_own_ranks() -> None:
    """SFT's batch splits over the ranks of SFT's engine, not the run's (STAT: one QLoRA GPU under eight)."""
    with pytest.raises(ConfigError, match=r"SFT's ranks: method.sft.trainer=cpu"):
        load_run_config(_compose(["experiment=smoke", "+trainer@method.sft.trainer=cpu",
                                  "method.sft.trainer.micro_batch_size=3", "method.sft.batch_size=8"]))
    run = load_run_config(_compose(["experiment=smoke", "+trainer@method.sft.trainer=cpu",
                                    "method.sft.trainer.micro_batch_size=2", "method.sft.batch_size=8"]))
    assert run.method.sft.trainer.precision != "auto"  # resolved at start-up like the run's trainer
    assert _records(["experiment=smoke", "+trainer@method.sft.trainer=cpu", "method.sft.trainer.micro_batch_size=2",
                     "method.sft.batch_size=8"])["sft"].trainer.micro_batch_size == 2


def check_selection(run_dir: Path, grid: tuple[str, ...] = ("0.001", "0.0001")) -> dict:
    """A finished run with a search: each candidate trained at its lr and was scored on val, the best went on (the
    same files), and the final eval evaluated it. Returns the selection record."""
    record = json.loads((run_dir / "sft_select" / SELECTION).read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = {s["lr"]: s["score"] for s in record["scores"]}
    assert list(scores) == [float(g) for g in grid]
    assert summary["sft_select/lr"] == record["chosen_lr"] == choose(list(scores.items()))
    for lr in grid:
        built = json.loads((run_dir / f"sft_lr{lr}" / "stage.json").read_text())
        assert built["inputs"]["sft"]["optim"]["lr"] == float(lr)  # each candidate trained at its own lr
        val = json.loads((run_dir / f"sft_val_lr{lr}" / "eval_metrics.json").read_text())
        assert val["avg/score"] == scores[float(lr)] == summary[f"sft_select/{lr}/val_score"]
        assert val["countdown_3/num_items"] == 3
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for lr in grid:  # each candidate's curve on its own axis, none rewound by the next candidate's start
        assert [r["step"] for r in logged if f"sft_lr{lr}/loss" in r] == [1, 2, 3, 4]
    chosen = run_dir / f"sft_lr{record['chosen_lr']:g}" / "model"
    weights = next(p.name for p in chosen.iterdir() if p.suffix == ".safetensors")
    assert (run_dir / "sft_select" / "model" / weights).stat().st_ino == (chosen / weights).stat().st_ino
    final = json.loads((run_dir / "eval" / "stage.json").read_text())
    select_key = json.loads((run_dir / "sft_select" / "stage.json").read_text())["key"]
    assert final["inputs"]["model_dir"] == {"artifact": select_key}
    return record


@pytest.mark.slow
def test_a_run_trains_each_lr_evaluates_each_on_val_and_goes_on_with_the_best(tmp_path: Path) -> None:
    args = ["experiment=smoke", SEARCH, f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_cli(args, tmp_path / "sweep" / "a")
    record = check_selection(tmp_path / "sweep" / "a")
    again = run_cli(args, tmp_path / "sweep" / "b")
    assert "stage sft_select: reusing" in again.stderr + again.stdout
    assert report_main([str(tmp_path / "sweep"), "--wandb", "off"]) == 0
    report = (tmp_path / "sweep" / "report" / "results.md").read_text()
    assert "### SFT learning rate chosen on validation" in report
    assert f"s0: {record['chosen_lr']:g}" in report and "0.001: " in report and "0.0001: " in report
