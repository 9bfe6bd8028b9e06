"""The stage cache: keys follow exactly the config a stage reads; shared stages are computed once, also by
concurrent processes; a killed build resumes; reuse across runs through the real CLI."""
from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.generation.base import SamplingParams
from skillexp.generation.cached import CachedGenerator
from skillexp.generation.config import GenerationConfig
from skillexp.pipeline import stage_specs
from skillexp.stage_cache import StageCache, StageSpec, entries
from tests.conftest import TINY
from tests.test_configs import _compose
from tests.test_main import ROOT, run_cli

BASE = ["experiment=smoke", "rl=grpo_cpu"]


def _keys(overrides: list[str]) -> dict[str, str]:
    return {name: spec.key for name, spec in stage_specs(load_run_config(_compose([*BASE, *overrides]))).items()}


def test_keys_change_only_downstream_of_what_changed() -> None:
    base = _keys([])
    assert set(base) == {"sft_data", "sft", "pre_rl", "rl", "eval"}
    assert base["pre_rl"] != base["eval"]  # different models are evaluated
    eval_changed = _keys(["eval.k=3"])
    assert {n for n in base if base[n] != eval_changed[n]} == {"pre_rl", "eval"}
    sft_changed = _keys(["method.sft.max_steps=7"])
    assert {n for n in base if base[n] != sft_changed[n]} == {"sft", "pre_rl", "rl", "eval"}
    rl_changed = _keys(["rl.lr=3e-5"])
    assert {n for n in base if base[n] != rl_changed[n]} == {"rl", "eval"}
    seed_changed = _keys(["seed=1"])
    assert all(base[n] != seed_changed[n] for n in base)
    # how a run logs, checkpoints or names itself does not change what it computes
    assert _keys(["logger=none", "trainer.save_every_steps=3", "eval.score_workers=0", "run_name=x",
                  "generation.show_progress=false", "rl.sample_table_every_steps=2"]) == base


def test_an_sft_run_and_a_pre_rl_eval_of_the_same_model_share_the_eval() -> None:
    sft_only = _keys(["rl=none"])
    assert sft_only["eval"] == _keys([])["pre_rl"]
    assert sft_only["sft"] == _keys([])["sft"]


def _slow_build(root: str, run_dir: str, log: str) -> None:
    def build(out: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.0)
        (out / "result.txt").write_text("42")

    StageCache(Path(root), Path(run_dir)).run(StageSpec("demo", {"a": 1}), build)


def test_concurrent_runs_build_a_shared_stage_once(tmp_path: Path) -> None:
    log = tmp_path / "builds.log"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path / "cache"), str(tmp_path / f"run{i}"), str(log)))
             for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text() == "built\n"
    for i in range(3):  # every run dir links to the one published output
        assert (tmp_path / f"run{i}" / "demo" / "result.txt").read_text() == "42"
    [entry] = entries(tmp_path / "cache")
    assert entry["finished"] and entry["stage"] == "demo"
    meta = json.loads((Path(entry["path"]) / "stage.json").read_text())
    assert meta["config"] == {"a": 1} and meta["built_by"].endswith(("run0", "run1", "run2"))


def test_a_failed_build_is_not_published_and_the_next_run_resumes_it(tmp_path: Path) -> None:
    cache, spec = StageCache(tmp_path / "cache", tmp_path / "run"), StageSpec("demo", {"a": 2})

    def crash(out: Path) -> None:
        (out / "checkpoint").write_text("step 5")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.run(spec, crash)
    [entry] = entries(tmp_path / "cache")
    assert not entry["finished"]
    seen = []
    out = cache.run(spec, lambda work: seen.append((work / "checkpoint").read_text()))
    assert seen == ["step 5"] and out.name == spec.key and (out / "checkpoint").exists()
    assert [e["finished"] for e in entries(tmp_path / "cache")] == [True]


def test_without_a_cache_stages_live_in_the_run_dir(tmp_path: Path) -> None:
    out = StageCache(None, tmp_path).run(StageSpec("demo", {}), lambda work: work.mkdir(parents=True), "pre_rl")
    assert out == tmp_path / "pre_rl" and out.is_dir() and not out.is_symlink()


@pytest.mark.slow
def test_runs_reuse_shared_stages_through_the_cli(tmp_path: Path) -> None:
    """A changed eval setting reuses SFT data and SFT; a changed SFT setting rebuilds SFT but keeps the data;
    `skillexp cache` lists and cleans what the runs left."""
    cache = tmp_path / "shared"
    common = ["experiment=smoke", f"paths.stage_cache_dir={cache}"]

    def logged(args: list[str], run_dir: Path) -> str:
        proc = run_cli(args, run_dir)
        return proc.stdout + proc.stderr

    assert "reusing" not in logged(common, tmp_path / "a")
    second = logged([*common, "eval.num_items=2"], tmp_path / "b")
    assert "stage sft_data: reusing" in second and "stage sft: reusing" in second
    assert "stage eval: reusing" not in second
    third = logged([*common, "method.sft.max_steps=3"], tmp_path / "c")
    assert "stage sft_data: reusing" in third and "stage sft: reusing" not in third
    assert (tmp_path / "b" / "sft").resolve() == (tmp_path / "a" / "sft").resolve()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["countdown_3/num_items"] == 2
    stages = {e["stage"] for e in entries(cache)}
    assert stages == {"sft_data", "sft", "eval"}
    listing = subprocess.run([sys.executable, "-m", "skillexp", "cache", "list", "--root", str(cache)],
                             capture_output=True, text=True, cwd=ROOT)
    assert listing.returncode == 0 and listing.stdout.count(" done ") == 6, listing.stdout  # data, 2 sft, 3 eval
    dry = subprocess.run([sys.executable, "-m", "skillexp", "cache", "clean", "--root", str(cache), "--stage",
                          "eval"], capture_output=True, text=True, cwd=ROOT)
    assert "would remove 3 outputs" in dry.stdout and len(entries(cache)) == 6
    subprocess.run([sys.executable, "-m", "skillexp", "cache", "clean", "--root", str(cache), "--stage", "eval",
                    "--yes"], check=True, capture_output=True, cwd=ROOT)
    assert {e["stage"] for e in entries(cache)} == {"sft_data", "sft"}
    bad = subprocess.run([sys.executable, "-m", "skillexp", "cache", "--root", str(tmp_path / "nope")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "is not a directory" in bad.stderr


@pytest.mark.vllm
@pytest.mark.slow
def test_base_model_samples_are_drawn_once_across_runs(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Two generators over the same model and cache: the second call is answered from the cache without starting
    an engine, and vLLM's per-request seeds make cached and fresh completions identical. (An engine of its own:
    the session's shared one may have lost its process groups to the DeepSpeed tests by now.)"""
    from skillexp.generation.vllm import VLLMGenerator

    engine = VLLMGenerator(tiny_model_dir, TINY, GenerationConfig(backend="vllm", show_progress=False))
    try:
        prompts = [[1, 2, 3], [4, 5, 6, 7], [8, 9]]
        params = SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=3)
        first = CachedGenerator(lambda: engine, engine.tokenizer, tmp_path / "s.sqlite")
        a = first.generate(prompts[:2], params)
        assert (first.hits, first.misses) == (0, 2)
        starts = []
        second = CachedGenerator(lambda: starts.append(1) or engine, engine.tokenizer, tmp_path / "s.sqlite")
        assert second.generate(prompts[:2], params) == a and not starts  # all cached: no engine
        b = second.generate(prompts, params)  # one new prompt: the engine starts for it alone
        assert b[:2] == a and starts == [1] and (second.hits, second.misses) == (4, 1)
        assert b == engine.generate(prompts, params)  # exactly what an uncached run samples
        assert second.generate(prompts, SamplingParams(n=2, temperature=1.0, max_tokens=8, seed=4)) != b
    finally:
        engine.close()


@pytest.mark.slow
def test_a_run_that_reuses_the_rl_stage_still_logs_its_reward_curve(tmp_path: Path) -> None:
    from skillexp.utils.io import read_jsonl
    from tests.test_preemption import GRPO

    args = [*GRPO, "rl.steps=3", f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_cli(args, tmp_path / "a")
    again = run_cli([*args, "eval.k=1", "eval.pass_k=[1]"], tmp_path / "b")
    assert "stage rl: reusing" in again.stdout + again.stderr

    def curve(run_dir: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["rl/reward_mean"]) for r in read_jsonl(run_dir / "metrics.jsonl") if "rl/reward_mean" in r]

    assert curve(tmp_path / "b") == curve(tmp_path / "a") and len(curve(tmp_path / "a")) == 3
