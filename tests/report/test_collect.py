"""Finding runs in a sweep dir and grouping them: seeds are averaged, anything else that differs is named."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from skillexp.report.collect import ReportError, collect, find_runs
from tests.report.fake_runs import make_run


def test_find_runs_recursive_unfinished_and_excluded(tmp_path: Path) -> None:
    a = make_run(tmp_path / "0-sft")
    b = make_run(tmp_path / "group" / "nested" / "1-sft", seed=1)
    unfinished = make_run(tmp_path / "2-sft", seed=2, finished=False)
    crashed = tmp_path / "3-sft"
    (crashed / ".hydra").mkdir(parents=True)  # failed before the pipeline wrote config.yaml
    make_run(tmp_path / "report" / "old", seed=3)  # the report's own dir is not searched
    finished, pending = find_runs(tmp_path, exclude=tmp_path / "report")
    assert finished == [a, b]
    assert pending == [unfinished, crashed]


def test_unfinished_and_foreign_runs_are_named(tmp_path: Path) -> None:
    make_run(tmp_path / "0", seed=0)
    make_run(tmp_path / "1", seed=1, finished=False)
    foreign = tmp_path / "other"
    foreign.mkdir()
    (foreign / "summary.json").write_text("{}")
    sweep = collect(tmp_path)
    assert [r.seed for r in sweep.runs] == [0]
    assert any("unfinished run" in w and str(tmp_path / "1") in w for w in sweep.warnings)
    assert any(str(foreign) in w and "no config.yaml" in w for w in sweep.warnings)


def test_methods_and_rl_are_labels_not_settings(tmp_path: Path) -> None:
    make_run(tmp_path / "0", method="sft")
    make_run(tmp_path / "1", method="skillfactory", rl="grpo_cpu")
    make_run(tmp_path / "2", method="skillfactory_no_reflections", rl="grpo_cpu")
    make_run(tmp_path / "3", method="stat_sel", extra=("teacher=oracle",))  # the teacher is part of STAT
    make_run(tmp_path / "4", method="none", rl="dapo", seed=1)
    sweep = collect(tmp_path)
    assert sweep.setting_keys == []
    assert {(r.method, r.rl) for r in sweep.runs} == {
        ("sft", "none"), ("skillfactory", "grpo_cpu"), ("skillfactory_no_reflections", "grpo_cpu"),
        ("stat_sel", "none"), ("none", "dapo")}


def test_runs_whose_paper_quotes_differ_are_seeds_of_one_setting(tmp_path: Path) -> None:
    """A quote corrected between two runs of a sweep changes what the report prints beside them, not the runs."""
    make_run(tmp_path / "0", seed=0)
    make_run(tmp_path / "1", seed=1, extra=("+eval.paper.old={title: Old quotes, columns: []}",))
    sweep = collect(tmp_path)
    assert sweep.setting_keys == [] and {r.setting for r in sweep.runs} == {()}


def test_different_models_are_separate_settings(tmp_path: Path) -> None:
    for seed in (0, 1):
        make_run(tmp_path / f"tiny{seed}", seed=seed)
        make_run(tmp_path / f"smol{seed}", seed=seed, extra=("model=smollm2_135m",))
    sweep = collect(tmp_path)
    # model.path, dtype... follow from model.name and are not listed; the run name and W&B group are bookkeeping
    assert sweep.setting_keys == ["model.name"]
    assert sorted({r.setting for r in sweep.runs}) == [(("model.name", "smollm2-135m-instruct"),),
                                                       (("model.name", "tiny"),)]


def test_a_swept_method_parameter_is_in_the_label(tmp_path: Path) -> None:
    for steps in (4, 8):
        make_run(tmp_path / f"sft{steps}", extra=(f"method.sft.max_steps={steps}",))
        make_run(tmp_path / f"rl{steps}", method="none", rl="grpo_cpu", extra=(f"rl.steps={steps}",))
    sweep = collect(tmp_path)
    assert sweep.setting_keys == []
    assert sorted((r.method, r.rl) for r in sweep.runs) == [
        ("none", "grpo_cpu [rl.steps=4]"), ("none", "grpo_cpu [rl.steps=8]"),
        ("sft [method.sft.max_steps=4]", "none"), ("sft [method.sft.max_steps=8]", "none")]


def test_rl_settings_that_differ_between_methods_are_named(tmp_path: Path) -> None:
    """Two methods' RL runs with different RL budgets are not comparable as "the same RL": the label says so."""
    make_run(tmp_path / "a", method="sft", rl="grpo_cpu", extra=("rl.steps=4",))
    make_run(tmp_path / "b", method="none", rl="grpo_cpu", extra=("rl.steps=8",))
    make_run(tmp_path / "c", method="sft")
    sweep = collect(tmp_path)
    assert sorted((r.method, r.rl) for r in sweep.runs) == [
        ("none", "grpo_cpu [rl.steps=8]"), ("sft", "grpo_cpu [rl.steps=4]"), ("sft", "none")]


def test_same_config_and_seed_twice_keeps_the_newer(tmp_path: Path) -> None:
    old = make_run(tmp_path / "a" / "0", score=lambda v: 0.1)
    new = tmp_path / "b" / "0"
    shutil.copytree(old, new)
    os.utime(old / "summary.json", (1, 1))
    sweep = collect(tmp_path)
    assert [r.path for r in sweep.runs] == [new]
    assert any("same config and seed" in w for w in sweep.warnings)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="is not a directory"):
        collect(tmp_path / "missing")
    make_run(tmp_path / "0", finished=False)
    with pytest.raises(ReportError, match="no finished runs.*1 unfinished"):
        collect(tmp_path)


def test_reward_curve_of_a_resumed_run(tmp_path: Path) -> None:
    """A run killed after step 2 and resumed from its step-1 checkpoint logs step 2 again: the last value counts."""
    path = make_run(tmp_path / "0", method="none", rl="grpo_cpu", rewards=[0.1, 0.2])
    with open(path / "metrics.jsonl", "a") as f:
        f.write('{"time": 1.0, "step": 2, "rl/reward_mean": 0.25}\n{"time": 2.0, "step": 3, "rl/reward_mean": 0.3}\n')
    (run,) = collect(tmp_path).runs
    assert run.reward_curve() == {1: 0.1, 2: 0.25, 3: 0.3}
