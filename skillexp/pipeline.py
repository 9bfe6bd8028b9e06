"""Stage order and each stage's inputs. Only this module and `__main__` know which stage follows which.

Each stage is one function, `<stage>_stage(inputs, out_dir, runtime)`, of a frozen inputs record that holds exactly
the settings the stage reads and the artifacts it consumes (`stage_inputs` builds them from the config); its cache
key is the record's digest (skillexp/stage_cache.py). So a sweep computes a shared stage once (the SFT data of one
method for every RL variant, a base model's eval for every method=none run), a changed eval setting reuses the
trained models, and a stage cannot read a setting its key leaves out. A killed stage resumes when its key runs again.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from skillexp.config import RunConfig, read_catalogue
from skillexp.eval.config import SUBSET, EvalConfig, EvalInputs, SubsetInputs
from skillexp.eval.stage import eval_stage, format_table
from skillexp.eval.subset import subset_stage
from skillexp.generation.shared import SharedEngine
from skillexp.methods.build import SFT_DATA, sft_data_stage
from skillexp.methods.config import HeldOut, SFTDataInputs
from skillexp.models import resolve_model_dir
from skillexp.rl.config import RLInputs
from skillexp.rl.forward import head_applies
from skillexp.rl.grpo import STEP_LOG, replayed_steps, rl_stage
from skillexp.rl.head import HEAD_CHUNK
from skillexp.runtime import Runtime
from skillexp.stage_cache import Artifact, StageCache, StageInputs, digest
from skillexp.tasks import build_task, task_spec
from skillexp.tasks.sources import fingerprint
from skillexp.teachers import probe_teacher
from skillexp.timing import phase, start_run, write_timing
from skillexp.tracking import Tracker
from skillexp.training.config import SFTInputs
from skillexp.training.launch import num_processes, sft_stage, slurm_nodes
from skillexp.training.memory import MemoryPlan, ModelShape, plan_for
from skillexp.training.select import (Candidate, SFTSelectInputs, lr_name, read_selection, select_stage,
                                      selection_metrics)
from skillexp.utils.io import atomic_write_json, atomic_write_text
from skillexp.utils.schema import ConfigError

log = logging.getLogger(__name__)
VAL = "sft_val_lr"  # the val eval of each candidate of method.sft.lr_search, by its lr


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def stages(run: RunConfig) -> list[str]:
    """The stages this config runs, in order."""
    out = ["subset"] if any(run.eval.subset(n) for n in run.eval.variants) else []
    if run.method.name != "none":
        out += ["sft_data", "sft"] + (["sft_select"] if run.method.sft.lr_search else [])
    if run.rl.name != "none":
        out.append("rl")
    return out + ["eval"]


def data_fingerprints(run: RunConfig) -> dict[str, str]:
    """sha256 of every file the training task and the eval suite's variants read, keyed `<config path>:<file>`;
    each stage keys on the part it reads: a stage whose data changed on disk gets a new key, never a stale reuse."""
    specs = {"task": run.task, **{f"eval.variants.{n}": s for n, s in run.eval.task_specs().items()}}
    out = {}
    for path, spec in specs.items():
        kind, params = task_spec(spec, path)
        for file in build_task(kind, params, name=path.rsplit(".", 1)[-1], path=path).data_files():
            out[f"{path}:{file.name}"] = fingerprint(file)
    return out


def _part(data: dict[str, str], *prefixes: str) -> dict[str, str]:
    """The fingerprints of the files read by the specs under these config paths."""
    return {k: v for k, v in data.items() if k.startswith(prefixes)}


def _sft_data_inputs(run: RunConfig, base: Artifact, data: dict[str, str]) -> SFTDataInputs:
    m = run.method
    stat = m.name.startswith("stat")
    held_out = HeldOut(run.eval.task_specs(), run.eval.split) if m.name == "stat_syn" else None
    return SFTDataInputs(
        method=m.name, base=base, model=run.model, task=dict(run.task), num_questions=m.num_questions,
        samples_per_question=m.samples_per_question, sampling=m.sampling, if_empty=m.if_empty,
        generation=run.generation, seed=run.seed, skillfactory=m.skillfactory if m.name == "skillfactory" else None,
        stat=m.stat if stat else None, teacher=run.teacher if stat else None,
        catalogue=read_catalogue(run).subjects if stat else None, held_out=held_out,
        data=_part(data, "task:", *(["eval."] if held_out else [])))


def _val_suite(run: RunConfig, names: list[str] | None, num_items: int | None) -> EvalConfig | None:
    """The eval suite's variants `names` (default: those without a difficult subset, which is of the eval's split)
    on their val split, without greedy or budget forcing; None when no variant is left."""
    names = names or [n for n, s in run.eval.variants.items() if SUBSET not in s]
    if not names:
        return None
    return dataclasses.replace(run.eval, variants={n: run.eval.variants[n] for n in names}, split="val",
                               num_items=num_items, greedy=False,
                               budget_forcing=dataclasses.replace(run.eval.budget_forcing, enabled=False),
                               paper={})  # a report's layout, of the eval's own variants


def _validation(run: RunConfig) -> EvalConfig | None:
    """The suite GRPO validates on (rl.val_every_steps)."""
    return _val_suite(run, None, run.rl.val_num_items) if run.rl.val_every_steps else None


def _sft(run: RunConfig, cache: StageCache, base: Artifact, rows: Artifact,
         files: dict[str, str]) -> tuple[dict[str, StageInputs], Artifact]:
    """The SFT stage's records and the model what follows starts from: one sft stage at `method.sft.optim.lr`, or
    with `method.sft.lr_search` one per lr of its grid (named `sft_lr<lr>`), each model's eval on the val split
    (`sft_val_lr<lr>`) and the sft_select stage that picks one (training/select.py)."""
    sft, search = run.method.sft, run.method.sft.lr_search
    engine = sft.engine(run.trainer)
    if search is None:
        spec = SFTInputs(base=base, data=rows, model=run.model, sft=sft.at_lr(sft.optim.lr), trainer=engine,
                         seed=run.seed)
        return {"sft": spec}, Artifact(spec.key, str(cache.output(spec) / "model"))
    suite = _val_suite(run, search.variants, search.num_items)
    assert suite is not None  # config.check_lr_search refused a search with no variant to decide
    data = _part(files, *(f"eval.variants.{n}:" for n in suite.variants))
    out: dict[str, StageInputs] = {}
    candidates = []
    for lr in search.grid:
        name = f"sft_lr{lr_name(lr)}"
        out[name] = spec = SFTInputs(base=base, data=rows, model=run.model, sft=sft.at_lr(lr), trainer=engine,
                                     seed=run.seed)
        trained = Artifact(spec.key, str(cache.output(spec, name) / "model"))
        out[VAL + lr_name(lr)] = val = EvalInputs(model_dir=trained, model=run.model, suite=suite,
                                                  generation=run.generation, seed=run.seed, data=data, subsets={})
        candidates.append(Candidate(lr, trained, Artifact(val.key, str(cache.output(val, VAL + lr_name(lr))))))
    out["sft_select"] = select = SFTSelectInputs(tuple(candidates))
    return out, Artifact(select.key, str(cache.output(select) / "model"))


def _subsets(run: RunConfig, base: Artifact, data: dict[str, str]) -> dict[str, SubsetInputs]:
    """The subset stage of each eval variant with a `subset:` block, on the base model."""
    out = {}
    for name, spec in run.eval.task_specs().items():
        if (sub := run.eval.subset(name)) is not None:
            out[name] = SubsetInputs(base=base, model=run.model, task=spec, split=run.eval.split, subset=sub,
                                     generation=run.generation, seed=sub.seed,
                                     data=_part(data, f"eval.variants.{name}:"))
    return out


def stage_inputs(run: RunConfig, cache: StageCache, base_dir: Path) -> dict[str, StageInputs]:
    """The inputs record of every stage `run` runs ("pre_rl": the eval before RL), from the config alone; each
    consumes the artifact (key and path) of the stage before it, starting from the base model at `base_dir`."""
    out: dict[str, StageInputs] = {}
    files = data_fingerprints(run)
    model = Artifact(digest({"base_model": dataclasses.asdict(run.model)}), str(base_dir))
    subsets = {}
    for name, spec in _subsets(run, model, files).items():
        out[f"subset:{name}"] = spec
        subsets[name] = Artifact(spec.key, str(cache.output(spec, f"subset_{name}")))
    if "sft" in stages(run):
        out["sft_data"] = data = _sft_data_inputs(run, model, files)
        rows = Artifact(data.key, str(cache.output(data) / SFT_DATA))
        sft, model = _sft(run, cache, model, rows, files)
        out.update(sft)

    def evaluation(of: Artifact) -> EvalInputs:
        return EvalInputs(model_dir=of, model=run.model, suite=run.eval, generation=run.generation, seed=run.seed,
                          data=_part(files, "eval."), subsets=subsets)

    if "rl" in stages(run):
        out["pre_rl"] = evaluation(model)
        out["rl"] = rl = RLInputs(start=model, model=run.model, task=dict(run.task), rl=run.rl, trainer=run.trainer,
                                  generation=run.generation, seed=run.seed, validation=(val := _validation(run)),
                                  data=_part(files, "task:", *(["eval."] if val else [])))
        model = Artifact(rl.key, str(cache.output(rl) / "model"))
    out["eval"] = evaluation(model)
    return out


def runtime(run: RunConfig, run_dir: Path, tracker: Tracker) -> Runtime:
    """What `run`'s stages may use besides their inputs (skillexp/runtime.py)."""
    cache_root = run.paths.stage_cache_dir
    return Runtime(tracker=tracker, scoring=run.scoring, run_dir=run_dir, root_dir=Path(run.paths.root_dir),
                   cache_dir=Path(run.paths.cache_dir),
                   sample_cache=Path(cache_root) / "samples" if cache_root else None)


def _write_stages(run_dir: Path, specs: dict[str, StageInputs]) -> None:
    atomic_write_json(run_dir / "stages.json", {name: {"stage": s.name, "key": s.key} for name, s in specs.items()})


def _evaluate(inputs: EvalInputs, rt: Runtime, cache: StageCache, engine: SharedEngine,
              prefix: str = "", link: str | None = None) -> dict[str, float]:
    """Metrics of an eval stage, computed or reused; reused metrics are logged again so that every run's
    metrics.jsonl and W&B run hold its own numbers. The run dir links it as `link` (default: the prefix)."""
    with phase("eval"):
        out = cache.run(inputs, lambda o: eval_stage(inputs, o, rt, engine, prefix),
                        link or prefix.rstrip("/") or "eval")
    metrics = {f"{prefix}{k}": v for k, v in json.loads((out / "eval_metrics.json").read_text()).items()}
    if inputs.key not in cache.built:
        rt.tracker.log(metrics)
    return metrics


def _select_lr(specs: dict[str, StageInputs], rt: Runtime, cache: StageCache,
               engine: SharedEngine) -> dict[str, float]:
    """method.sft.lr_search: every candidate's val eval, then the sft_select stage; returns (and logs) the chosen
    lr and each candidate's val score."""
    for name, spec in specs.items():
        if name.startswith(VAL) and isinstance(spec, EvalInputs):
            _evaluate(spec, rt, cache, engine, prefix=f"sft_val/lr{name.removeprefix(VAL)}/", link=name)
    select = specs["sft_select"]
    assert isinstance(select, SFTSelectInputs)
    with phase("sft_select"):
        out = cache.run(select, lambda o: select_stage(select, o))
    record = read_selection(out)
    log.info("SFT learning rate chosen on the val split: %s (%s: %s)", lr_name(record["chosen_lr"]), record["metric"],
             ", ".join(f"lr {lr_name(s['lr'])} {s['score']:.3f}" for s in record["scores"]))
    metrics = selection_metrics(record)
    rt.tracker.log(metrics)
    return metrics


def _train_rl(inputs: RLInputs, rt: Runtime, cache: StageCache, engine: SharedEngine) -> Path:
    """The GRPO stage; a reused one's per-step metrics are logged again, so every run shows its reward curve."""
    with phase("rl"):
        out = cache.run(inputs, lambda o: rl_stage(inputs, o, rt, engine))
    if inputs.key not in cache.built and (out / STEP_LOG).exists():
        rt.tracker.rewind(0, "rl")  # a requeued run's first attempt may have logged them already
        for step, metrics in sorted(replayed_steps(out / STEP_LOG).items()):
            rt.tracker.log(metrics, step=step)
    return out / "model"


def memory_plans(run: RunConfig, model_dir: Path, gpu_bytes: int | None = None) -> dict[str, MemoryPlan]:
    """Each training stage's per-GPU memory plan (training/memory.py) on cards of `gpu_bytes` (default: this
    machine's first GPU; none on a machine without one, or for a model whose config.json the plan cannot read)."""
    if gpu_bytes is None:
        if not torch.cuda.is_available():
            return {}
        gpu_bytes = torch.cuda.get_device_properties(0).total_memory
    try:
        hf_config = json.loads((Path(model_dir) / "config.json").read_text())
        shape = ModelShape.from_hf_config(hf_config)
    except (OSError, ValueError, KeyError) as e:
        log.warning("no memory plan for %s: %s", model_dir, e)
        return {}
    nodes = len(slurm_nodes())
    world = num_processes(run.trainer.num_processes) * nodes
    out = {}
    fused_head = head_applies(hf_config.get("model_type"))  # both stages take the head in blocks (rl/head.py)
    if "sft" in stages(run):
        sft = run.method.sft.engine(run.trainer)
        out["sft"] = plan_for(shape, sft, seq_len=run.method.sft.max_length,
                              world_size=num_processes(sft.num_processes) * nodes,
                              gpu_bytes=gpu_bytes, logit_rows=HEAD_CHUNK if fused_head and run.method.sft.fused_head
                              else None)
    if "rl" in stages(run):
        fused = run.rl.fused_head and fused_head
        out["rl"] = plan_for(shape, run.trainer, seq_len=run.model.max_model_len, world_size=world,
                             gpu_bytes=gpu_bytes, generation=run.generation, kl_reference=run.rl.kl_coef > 0,
                             logit_rows=HEAD_CHUNK if fused else None)
    return out


def check_memory(plans: dict[str, MemoryPlan]) -> None:
    """Print each plan; refuse the run before any model loads if one cannot fit, with the settings to change."""
    for stage, plan in plans.items():
        log.info("memory plan of the %s stage (per GPU):\n%s", stage, "\n".join(plan.lines()))
        try:
            plan.check()
        except ValueError as e:
            raise ValueError(f"the {stage} stage would not fit on this GPU: {e}") from None


def run_pipeline(run: RunConfig, run_dir: Path) -> dict[str, float]:
    """Run every stage of `run`, with its outputs in the stage cache (linked from `run_dir`) or in `run_dir`;
    returns the final metrics, also written to summary.json."""
    start_run()  # phases and peak RSS from zero: timing.json holds this run's alone
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(run)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    seed_everything(run.seed)
    cache_root = run.paths.stage_cache_dir
    cache = StageCache(Path(cache_root) if cache_root else None, run_dir)
    model_dir = resolve_model_dir(run.model, Path(run.paths.cache_dir))
    specs = stage_inputs(run, cache, model_dir)
    try:  # checks that need the model's config.json: a user's settings that cannot work, told in one line
        if (model_dir / "config.json").exists():  # the rollout and eval engines' split, before a model loads
            run.generation.check_model(json.loads((model_dir / "config.json").read_text()))
        check_memory(memory_plans(run, model_dir))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    teacher = getattr(specs.get("sft_data"), "teacher", None)
    if teacher is not None and not (cache.enabled and cache.output(specs["sft_data"]).exists()):
        probe_teacher(teacher)  # an API teacher that cannot answer fails now, not minutes in
    # where this run lives (a requeued Slurm job appears as a new attempt with the same run dir)
    atomic_write_json(run_dir / "job.json", {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv,
                                             "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                                             "restarts": int(os.environ.get("SLURM_RESTART_COUNT", 0)),
                                             "started": time.time()})
    _write_stages(run_dir, specs)
    log.info("stages: %s; run dir: %s", " -> ".join(stages(run)), run_dir)

    tracker = Tracker(run.logger, run_dir, config)
    rt = runtime(run, run_dir, tracker)
    try:
        summary: dict[str, float] = {}
        if "sft" in stages(run):
            data_inputs = specs["sft_data"]
            with phase("sft_data"):
                data = cache.run(data_inputs, lambda out: sft_data_stage(data_inputs, out, rt))
            if (data / SFT_DATA).stat().st_size == 0:  # method.if_empty=base let an empty build through
                log.warning("no SFT data: SFT skipped, the run goes on from the base model (sft/skipped=1)")
                summary["sft/skipped"] = 1.0
                tracker.log(summary)
                specs = stage_inputs(dataclasses.replace(run, method=dataclasses.replace(run.method, name="none")),
                                     cache, model_dir)  # what follows starts from the base model, keyed so
                _write_stages(run_dir, specs)
            else:
                for name, spec in specs.items():  # one sft stage, or one per lr of method.sft.lr_search
                    if isinstance(spec, SFTInputs):
                        with phase("sft"):
                            cache.run(spec, lambda out, s=spec, n=name: sft_stage(s, out, rt, prefix=n), name)
        for name, spec in specs.items():  # before the shared engine: a PRM may need the GPU to itself
            if isinstance(spec, SubsetInputs):
                variant = name.split(":", 1)[1]
                with phase("subset"):
                    cache.run(spec, lambda out, s=spec, v=variant: subset_stage(s, out, rt, v), f"subset_{variant}")
        # pre-RL eval, GRPO and the final eval sample from one engine (started once, weights swapped in)
        with SharedEngine(run.model, run.generation, run.seed) as engine:
            if "sft_select" in specs:
                summary.update(_select_lr(specs, rt, cache, engine))
            if "rl" in specs:
                summary.update(_evaluate(specs["pre_rl"], rt, cache, engine, prefix="pre_rl/"))
                log.info("before RL:\n%s", format_table(summary, "pre_rl/"))
                _train_rl(specs["rl"], rt, cache, engine)
            summary.update(_evaluate(specs["eval"], rt, cache, engine))
        tracker.set_summary(summary)
        timing = write_timing(run_dir)  # before summary.json, whose presence marks the run finished
        log.info("time per phase (s): %s; peak RSS %s GiB", ", ".join(f"{k} {v:.0f}" for k, v in
                                                                     timing["phases_s"].items()),
                 f"{timing['peak_rss_gib']:.2f}" if timing["peak_rss_gib"] is not None else "unknown")
        atomic_write_json(run_dir / "summary.json", summary)
        return summary
    finally:
        tracker.finish()
