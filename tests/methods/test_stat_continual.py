"""Continual STAT (stat_consel, stat_consyn): the method it continues runs first, as the same stages (same keys)
as a run of that method; the new profile is of that method's SFT model, on the profile task's questions; SFT
continues from that model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.generation import build_generator
from skillexp.generation.sampling import sample
from skillexp.methods.stat.build import blocked_problems
from skillexp.methods.stat.difficulty import profiled
from skillexp.pipeline import plan
from skillexp.stage_cache import StageCache
from skillexp.utils.io import read_jsonl
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose
from tests.test_main import run_cli

TASK = ["+task.num_train=60", "+task.num_val=8", "+task.num_test=4", "+task.num_rl=0"]
PROFILE = "method.continual.profile={kind: countdown, num_numbers: 4, num_train: 0, num_rl: 0, num_val: 6, num_test: 0}"


def _plan(overrides: list[str], tmp_path: Path):
    run = load_run_config(_compose(["model=tiny", "teacher=oracle", *TASK, *overrides]))
    return run, plan(run, StageCache(tmp_path / "cache", tmp_path / "run"), tmp_path / "base")


@pytest.mark.parametrize("method,parent", [("stat_consel", "stat_sel"), ("stat_consyn", "stat_syn")])
def test_the_continued_method_runs_first_as_its_own_run_and_sft_continues_from_its_model(
        method: str, parent: str, tmp_path: Path) -> None:
    run, nodes = _plan([f"method={method}", PROFILE], tmp_path)
    _, alone = _plan([f"method={parent}"], tmp_path)
    by_name = {n.name: n.inputs for n in nodes}
    own = {n.name: n.inputs for n in alone}
    assert [n.name for n in nodes] == [f"{parent}_sft_data", f"{parent}_sft", "sft_data", "sft", "eval"]
    assert by_name[f"{parent}_sft_data"].key == own["sft_data"].key  # shared with a run of that method
    assert by_name[f"{parent}_sft"].key == own["sft"].key
    stat_model = by_name[f"{parent}_sft"].key
    assert by_name["sft_data"].base.key == stat_model  # the student profiled is the STAT model
    assert by_name["sft"].base.key == stat_model  # and SFT starts from it
    assert by_name["sft_data"].profile.as_config()["num_numbers"] == 4
    # another profile task is another dataset: a new key for the continual data, the same for the parent's
    _, other = _plan([f"method={method}", PROFILE.replace("num_val: 6", "num_val: 5")], tmp_path)
    assert other[0].inputs.key == nodes[0].inputs.key and other[2].inputs.key != nodes[2].inputs.key


def test_the_profile_is_of_the_profile_tasks_split_and_kept_out_of_synthetic_data(tmp_path: Path) -> None:
    run, nodes = _plan(["method=stat_consyn", PROFILE], tmp_path)
    inputs = next(n.inputs for n in nodes if n.name == "sft_data")
    task = run.task.build()
    asked, questions = profiled(inputs, task)
    assert len(questions) == 6 and all(len(it.meta["numbers"]) == 4 for it in questions)
    assert {asked.problem_key(it) for it in questions} <= blocked_problems(inputs, task)
    _, nodes = _plan(["method=stat_consel"], tmp_path)  # no profile task: the training task's val split again
    inputs = next(n.inputs for n in nodes if n.name == "sft_data")
    assert [it.id for it in profiled(inputs, task)[1]] == [it.id for it in task.items("val")]


def test_a_kind_other_than_the_tasks_is_refused() -> None:
    with pytest.raises(ConfigError, match="method.continual.profile.kind='math'"):
        load_run_config(_compose(["model=tiny", "teacher=oracle", "method=stat_consel",
                                  "method.continual.profile={kind: math}"]))


@pytest.mark.slow
def test_the_new_profile_samples_the_stat_model_not_the_base_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Profiled on the same val questions as STAT-Sel (no profile task), with the sample cache on: the continual
    profile's samples must be the STAT-Sel model's own, not the base model's the cache holds for the same prompts."""
    run_dir = tmp_path / "run"
    run_cli(["model=tiny", "generation=hf", "method=stat_consel", "teacher=oracle", *TASK,
             f"paths.stage_cache_dir={tmp_path / 'cache'}", "method.sampling.temperature=0",
             "method.sampling.max_tokens=12", "method.num_pairs=64", "method.sft.max_steps=3",
             "method.sft.optim.lr=1e-2", "method.sft.max_length=256", "trainer.micro_batch_size=4",
             "trainer.grad_accum=1", "eval.num_items=1", "eval.k=1", "eval.pass_k=[1]", "eval.sampling.max_tokens=4",
             "scoring.workers=0", "logger=none"], run_dir)
    first = read_jsonl(run_dir / "stat_sel_sft_data" / "stat" / "student_samples.jsonl")
    second = read_jsonl(run_dir / "sft_data" / "stat" / "student_samples.jsonl")
    assert [r["id"] for r in first] == [r["id"] for r in second]
    run = load_run_config(_compose(["model=tiny", "generation=hf", "method=stat_consel", "teacher=oracle", *TASK,
                                    "method.sampling.temperature=0", "method.sampling.max_tokens=12"]))
    task = run.task.build()
    gen = build_generator(run_dir / "stat_sel_sft" / "model", run.model, run.generation, seed=run.seed)
    try:
        own = sample(gen, [task.messages(it) for it in task.items("val")], 1, run.method.sampling, run.seed)
    finally:
        gen.close()
    assert [r["completions"] for r in second] == [[c.text for c in cs] for cs in own]
    assert [r["completions"] for r in second] != [r["completions"] for r in first]
    for data in ("stat_sel_sft_data", "sft_data"):  # both builds obey the common size
        assert len(read_jsonl(run_dir / data / "sft_data.jsonl")) == 64
    stages = json.loads((run_dir / "stages.json").read_text())
    assert sorted(stages) == ["eval", "sft", "sft_data", "stat_sel_sft", "stat_sel_sft_data"]


def test_without_its_own_data_a_continual_run_goes_on_from_the_stat_model(tmp_path: Path) -> None:
    """What `method.if_empty=base` runs after a continual build came out empty: the STAT model, evaluated."""
    run = load_run_config(_compose(["model=tiny", "teacher=oracle", *TASK, "method=stat_consel"]))
    nodes = plan(run, StageCache(tmp_path / "cache", tmp_path / "run"), tmp_path / "base", own_sft=False)
    assert [n.name for n in nodes] == ["stat_sel_sft_data", "stat_sel_sft", "eval"]
    assert nodes[-1].inputs.model_dir.key == nodes[1].inputs.key
