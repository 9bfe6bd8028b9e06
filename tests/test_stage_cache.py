"""The stage cache: keys follow exactly the config a stage reads; shared stages are computed once, also by
concurrent processes; a killed build resumes; reuse across runs through the real CLI."""
from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest

from skillexp.config import load_run_config
from skillexp.generation.base import SamplingParams
from skillexp.generation.cached import CachedGenerator
from skillexp.generation.config import GenerationConfig
from skillexp.pipeline import stage_inputs
from skillexp.stage_cache import Artifact, StageCache, StageInputs, entries
from skillexp.utils.schema import keyed, parsed_value
from tests.conftest import TINY
from tests.test_configs import _compose
from tests.test_main import ROOT, run_cli

BASE = ["experiment=smoke", "rl=grpo_cpu"]


@dataclasses.dataclass(frozen=True)
class Demo(StageInputs):
    STAGE: ClassVar[str] = "demo"
    VERSION: ClassVar[int] = 1
    a: int = 0


def _keys(overrides: list[str], base: list[str] = BASE) -> dict[str, str]:
    run = load_run_config(_compose([*base, *overrides]))
    return {name: spec.key for name, spec in stage_inputs(run, StageCache(None, Path("run")), Path("base")).items()}


def _changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n in before if before[n] != after[n]}


def test_keys_change_only_downstream_of_what_changed() -> None:
    base = _keys([])
    assert set(base) == {"sft_data", "sft", "pre_rl", "rl", "eval"}
    assert base["pre_rl"] != base["eval"]  # different models are evaluated
    assert _changed(base, _keys(["eval.k=3"])) == {"pre_rl", "rl", "eval"}  # GRPO validates on the suite
    assert _changed(base, _keys(["method.sft.max_steps=7"])) == {"sft", "pre_rl", "rl", "eval"}
    assert _changed(base, _keys(["rl.optim.lr=3e-5"])) == {"rl", "eval"}
    assert _changed(base, _keys(["seed=1"])) == set(base)
    # how a run logs, checkpoints, scores or names itself does not change what it computes
    assert _keys(["logger=none", "trainer.save_every_steps=3", "scoring.workers=0", "scoring.timeout_s=5",
                  "run_name=x", "generation.show_progress=false", "rl.sample_table_every_steps=2",
                  "eval.log_samples=1"]) == base


def test_stat_syn_data_follows_the_eval_suite_it_is_filtered_against() -> None:
    """STAT-Syn drops proposed questions that are in the eval suite, so its data depends on the suite: a changed
    suite rebuilds it (and what follows), while STAT-Sel's data, which does not read the suite, is reused."""
    suite = ["eval.variants.countdown_3.num_numbers=4"]
    for method, rebuilt in (("stat_syn", {"sft_data", "sft", "pre_rl", "rl", "eval"}),
                            ("stat_sel", {"pre_rl", "rl", "eval"})):  # rl: GRPO validates on the suite
        base = [*BASE, f"method={method}", "teacher=oracle"]
        assert _changed(_keys([], base), _keys(suite, base)) == rebuilt, method


def test_grpo_follows_the_suite_it_validates_on() -> None:
    """GRPO's validation samples the eval suite's val split: with validation on, a changed suite rebuilds the rl
    stage; with it off, the rl stage does not read the suite and is reused."""
    assert _changed(_keys([]), _keys(["eval.k=3"])) == {"pre_rl", "rl", "eval"}  # rl=grpo_cpu validates
    off = [*BASE, "rl.val_every_steps=0"]
    assert _changed(_keys([], off), _keys(["eval.k=3"], off)) == {"pre_rl", "eval"}


def test_a_data_file_changed_on_disk_is_a_new_key(tmp_path: Path) -> None:
    """The same config over a file whose rows changed must not reuse what the old rows produced: the file's sha256
    is in the key of every stage that reads it (the task's: all; an eval variant's: the evals, and GRPO's
    validation)."""
    task, variant = tmp_path / "task.jsonl", tmp_path / "eval.jsonl"
    rows = "".join(json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(40))
    task.write_text(rows)
    variant.write_text(rows)
    files = ["task=math", f"task.path={task}", "eval=math", f"eval.variants.math.path={variant}"]
    before = _keys(files)
    variant.write_text(rows.replace("What is 3 + 1?", "What is 3 + 2?").replace('"4"', '"5"'))
    assert _changed(before, _keys(files)) == {"pre_rl", "rl", "eval"}
    task.write_text(rows.replace("What is 7 + 1?", "What is 7 + 2?"))
    assert _changed(before, _keys(files)) == set(before)


def test_a_difficult_subset_is_the_base_models_whatever_the_method_or_seed() -> None:
    """STAT's MATHD: the questions the base model finds difficult, the same for every row of the table: the subset
    stage's key follows the base model, the variant's data and the detector, never the method, RL or run seed; the
    evals that read it follow it; GRPO's validation leaves subset variants out."""
    suite = ["eval=stat_math_cpu"]
    base = _keys(suite)
    assert "subset_mathd" in base
    for other in (["method=star"], ["rl=none"], ["seed=3"], ["rl.optim.lr=3e-5"]):
        assert _keys([*suite, *other])["subset_mathd"] == base["subset_mathd"], other
    detector = _keys([*suite, "eval.variants.mathd.subset.detector=consistency"])
    assert _changed(base, detector) == {"subset_mathd", "pre_rl", "eval"}
    assert _changed(base, _keys([*suite, "model.max_model_len=512"])) == set(base)  # another base model


def _leaves(value: object, path: tuple = ()) -> list[tuple]:
    """Every settable leaf of a record: (path of field names, value); dataclasses are walked, the rest (and values
    kept in their config's form, a task spec) are leaves."""
    if dataclasses.is_dataclass(value) and not isinstance(value, Artifact) and not parsed_value(type(value)):
        return [leaf for f in dataclasses.fields(value) for leaf in _leaves(getattr(value, f.name), (*path, f.name))]
    return [(path, value)]


def _replace(record: StageInputs, path: tuple, new: object) -> StageInputs:
    """A copy of `record` with the field at `path` set to `new` (no validation: only the key is looked at)."""
    out = copy.deepcopy(record)
    owner = out
    for name in path[:-1]:
        owner = getattr(owner, name)
    object.__setattr__(owner, path[-1], new)
    return out


def _unkeyed(record: object, path: tuple) -> bool:
    owner = record
    for name in path[:-1]:
        owner = getattr(owner, name)
    return not keyed(type(owner), path[-1])


@pytest.mark.parametrize("method", ["sft", "skillfactory", "stat_syn"])
def test_every_field_of_every_record_changes_its_key(method: str) -> None:
    """The key is the record: changing any setting a stage reads (or the key of an artifact it consumes) changes
    the stage's key; changing a setting marked UNKEYED (logging, cadence, labels) or an artifact's path does not."""
    run = load_run_config(_compose([*BASE, f"method={method}", "teacher=oracle"]))
    records = stage_inputs(run, StageCache(None, Path("run")), Path("base"))
    checked = 0
    for name, record in records.items():
        for path, value in _leaves(record):
            if isinstance(value, Artifact):
                assert _replace(record, path, Artifact("other", value.path)).key != record.key, (name, path)
                assert _replace(record, path, Artifact(value.key, "/elsewhere")).key == record.key, (name, path)
                continue
            changed = _replace(record, path, ["<changed>", value]).key
            if _unkeyed(record, path):
                assert changed == record.key, (name, path)
            else:
                assert changed != record.key, (name, path)
            checked += 1
    assert checked > 100


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

    StageCache(Path(root), Path(run_dir)).run(Demo(a=1), build)


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
    assert meta["inputs"] == {"a": 1} and meta["built_by"].endswith(("run0", "run1", "run2"))


def test_a_failed_build_is_not_published_and_the_next_run_resumes_it(tmp_path: Path) -> None:
    cache, spec = StageCache(tmp_path / "cache", tmp_path / "run"), Demo(a=2)

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
    out = StageCache(None, tmp_path).run(Demo(), lambda work: work.mkdir(parents=True), "pre_rl")
    assert out == tmp_path / "pre_rl" and out.is_dir() and not out.is_symlink()


@pytest.mark.slow
def test_runs_reuse_shared_stages_through_the_cli(tmp_path: Path) -> None:
    """A changed eval setting reuses SFT data and SFT (which setting rebuilds which stage is
    test_keys_change_only_downstream_of_what_changed's); `skillexp cache` lists and cleans what the runs left."""
    cache = tmp_path / "shared"
    common = ["experiment=smoke", f"paths.stage_cache_dir={cache}"]

    def logged(args: list[str], run_dir: Path) -> str:
        proc = run_cli(args, run_dir)
        return proc.stdout + proc.stderr

    assert "reusing" not in logged(common, tmp_path / "a")
    second = logged([*common, "eval.num_items=2"], tmp_path / "b")
    assert "stage sft_data: reusing" in second and "stage sft: reusing" in second
    assert "stage eval: reusing" not in second
    assert (tmp_path / "b" / "sft").resolve() == (tmp_path / "a" / "sft").resolve()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["countdown_3/num_items"] == 2
    stages = {e["stage"] for e in entries(cache)}
    assert stages == {"sft_data", "sft", "eval"}
    listing = subprocess.run([sys.executable, "-m", "skillexp", "cache", "list", "--root", str(cache)],
                             capture_output=True, text=True, cwd=ROOT)
    assert listing.returncode == 0 and listing.stdout.count(" done ") == 4, listing.stdout  # data, sft, 2 eval
    dry = subprocess.run([sys.executable, "-m", "skillexp", "cache", "clean", "--root", str(cache), "--stage",
                          "eval"], capture_output=True, text=True, cwd=ROOT)
    assert "would remove 2 outputs" in dry.stdout and len(entries(cache)) == 4
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
@pytest.mark.long  # the reuse itself is in the suite (test_runs_reuse_shared_stages_through_the_cli)
def test_a_run_that_reuses_the_rl_stage_still_logs_its_reward_curve(tmp_path: Path) -> None:
    from skillexp.utils.io import read_jsonl
    from tests.test_preemption import GRPO

    args = [*GRPO, "rl.steps=3", f"paths.stage_cache_dir={tmp_path / 'cache'}"]
    run_cli(args, tmp_path / "a")
    again = run_cli([*args, "eval.k=1", "eval.pass_k=[1]"], tmp_path / "b")
    assert "stage rl: reusing" in again.stdout + again.stderr

    def curve(run_dir: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["rl/reward_mean"]) for r in read_jsonl(run_dir / "metrics.jsonl")
                if "rl/reward_mean" in r]

    assert curve(tmp_path / "b") == curve(tmp_path / "a") and len(curve(tmp_path / "a")) == 3


def test_the_ranks_a_training_stage_runs_on_are_in_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without method.sft.batch_size the ranks make SFT's batch, and GRPO's ranks sample with their own seeds: a
    run on two nodes is keyed apart from one on one, resolved when the run is planned, not inside the stage."""
    import skillexp.pipeline as pipeline

    one = _keys([])
    monkeypatch.setattr(pipeline, "slurm_nodes", lambda: ["node-a", "node-b"])
    two = _keys([])
    assert _changed(one, two) == {"sft", "pre_rl", "rl", "eval"}
    run = load_run_config(_compose(BASE))
    records = stage_inputs(run, StageCache(None, Path("run")), Path("base"))
    assert records["sft"].world == 2 and records["rl"].world == 2


def test_a_stage_refuses_ranks_it_was_not_planned_for(tmp_path: Path) -> None:
    from skillexp.pipeline import runtime
    from skillexp.tracking import Tracker
    from skillexp.training.sft import sft_stage

    run = load_run_config(_compose(["experiment=smoke"]))
    spec = dataclasses.replace(stage_inputs(run, StageCache(None, tmp_path), tmp_path)["sft"], world=2)
    tracker = Tracker(run.logger, tmp_path, {})
    try:
        with pytest.raises(RuntimeError, match=r"planned \(and keyed\) for 2 training rank\(s\) but would run on 1"):
            sft_stage(spec, tmp_path / "sft", runtime(run, tmp_path, tracker))
    finally:
        tracker.finish()


def test_a_local_prm_folder_is_resolved_into_the_record(tmp_path: Path) -> None:
    """STAT's PRM from a folder under the directory the command ran in, when one is there: the record says so
    (and its key moves), rather than the stage looking on its own."""
    base = ["experiment=smoke", "method=stat_sel", "teacher=oracle", "method.stat.difficulty=prm",
            f"paths.root_dir={tmp_path}"]
    hub = stage_inputs(load_run_config(_compose(base)), StageCache(None, Path("run")), Path("base"))["sft_data"]
    assert hub.stat.prm.model == "RLHFlow/Llama3.1-8B-PRM-Mistral-Data"
    (tmp_path / "RLHFlow" / "Llama3.1-8B-PRM-Mistral-Data").mkdir(parents=True)
    local = stage_inputs(load_run_config(_compose(base)), StageCache(None, Path("run")), Path("base"))["sft_data"]
    assert local.stat.prm.model == str(tmp_path / "RLHFlow" / "Llama3.1-8B-PRM-Mistral-Data")
    assert local.key != hub.key


def test_the_teacher_endpoint_is_in_the_keys_and_read_from_the_environment_at_start_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from skillexp.teachers.chat import chat_request, request_key

    base = ["experiment=smoke", "method=stat_sel", "teacher=openai", "teacher.model=m"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    default = _keys(base, base=[])
    a = _keys([*base, "teacher.base_url=http://a:8000/v1"], base=[])
    assert _changed(default, a) == {"sft_data", "sft", "eval"}
    monkeypatch.setenv("OPENAI_BASE_URL", "http://a:8000/v1")
    run = load_run_config(_compose(base))
    assert run.teacher.base_url == "http://a:8000/v1" and _keys(base, base=[]) == a
    messages = [{"role": "user", "content": "2+2?"}]
    plain = request_key(chat_request("m", messages, {"n": 1}))
    assert plain == request_key(chat_request("m", messages, {"n": 1}, None))  # OpenAI's own API: keys as before
    assert request_key(chat_request("m", messages, {"n": 1}, "http://a:8000/v1")) != plain
    assert request_key(chat_request("m", messages, {"n": 1}, "http://a:8000/v1")) != request_key(
        chat_request("m", messages, {"n": 1}, "http://b:8000/v1"))
