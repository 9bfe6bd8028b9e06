"""The run's stage graph and the loop that runs it. Only this module and `__main__` know which stage follows which.

`plan` turns a config into the run's nodes, in order: each a stage's inputs record (exactly the settings the stage
reads and the artifacts it consumes; skillexp/stages.py) under a name (its link in the run dir and its entry in
`stages.json`) and the prefix of the metrics it logs. A record's key is its digest (skillexp/stage_cache.py), so a
sweep computes a shared stage once (the SFT data of one method for every RL variant, a base model's eval for every
method=none run), a changed eval setting reuses the trained models, and a stage cannot read a setting its key leaves
out. `run_pipeline` runs the nodes in order, each through the stage cache; a killed stage resumes when its key runs
again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from omegaconf import OmegaConf

from skillexp import stages
from skillexp.config import RunConfig, read_catalogue, read_examples
from skillexp.eval.config import SUBSET, EvalConfig, EvalInputs, SubsetInputs
from skillexp.eval.stage import format_table
from skillexp.generation.shared import SharedEngine
from skillexp.methods.build import is_empty
from skillexp.methods.config import BASELINES, STAT_FAMILY, STAT_SYN, HeldOut, SFTDataInputs
from skillexp.models import resolve_model_dir
from skillexp.rl.config import RLInputs
from skillexp.runtime import Runtime
from skillexp.stage_cache import Artifact, StageCache, StageInputs, digest
from skillexp.stages import Stage
from skillexp.tasks.sources import fingerprint
from skillexp.teachers import probe_teacher
from skillexp.timing import phase, start_run, write_timing
from skillexp.tracking import Tracker
from skillexp.training.config import SFTInputs, TrainerConfig
from skillexp.training.launch import num_processes, slurm_nodes
from skillexp.training.memory import MemoryPlan, ModelShape
from skillexp.training.select import Candidate, SFTSelectInputs, lr_name
from skillexp.utils.io import atomic_write_json, atomic_write_text
from skillexp.utils.schema import ConfigError, to_plain

log = logging.getLogger(__name__)
T = TypeVar("T")
VAL = "sft_val_lr"  # the val eval of each candidate of method.sft.lr_search, by its lr


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Node:
    """One stage of the run: its inputs record, its name (the run dir's link to its output, `stages.json`'s entry)
    and the prefix of the metrics it logs."""

    name: str
    inputs: StageInputs
    prefix: str = ""

    @property
    def stage(self) -> Stage:
        return stages.get(self.inputs.STAGE)


def data_fingerprints(run: RunConfig) -> dict[str, str]:
    """sha256 of every file the training task and the eval suite's variants read, keyed `<config path>:<file>`;
    each stage keys on the part it reads: a stage whose data changed on disk gets a new key, never a stale reuse."""
    out = {}
    for path, spec in run.task_specs().items():
        for file in spec.build(name=path.rsplit(".", 1)[-1], path=path).data_files():
            out[f"{path}:{file.name}"] = fingerprint(file)
    return out


def _part(data: dict[str, str], *prefixes: str) -> dict[str, str]:
    """The fingerprints of the files read by the specs under these config paths."""
    return {k: v for k, v in data.items() if k.startswith(prefixes)}


def _sft_data_inputs(run: RunConfig, base: Artifact, data: dict[str, str]) -> SFTDataInputs:
    m = run.method
    stat = m.name.startswith("stat")
    held_out = HeldOut(run.eval.tasks(), run.eval.split) if m.name in (*STAT_SYN, "embed_syn") else None
    continual = m.parent() is not None
    return SFTDataInputs(
        method=m.name, base=base, model=run.model, task=run.task, num_questions=m.num_questions,
        num_pairs=m.num_pairs, samples_per_question=m.samples_per_question, sampling=m.sampling,
        if_empty=m.if_empty, generation=run.generation, seed=run.seed,
        skillfactory=m.skillfactory if m.name == "skillfactory" else None,
        stat=_with_prm(run, m.stat) if m.name in STAT_FAMILY else None,
        teacher=run.teacher if m.needs_teacher() else None,
        catalogue=read_catalogue(run).subjects if stat else None, held_out=held_out,
        baselines=m.baselines if m.name in BASELINES else None,
        distill=m.distill if m.name in ("distill", "bolt") else None,
        examples=read_examples(run) if m.name == "bolt" else None,
        profile=m.continual.profile if continual else None, profile_split=m.continual.split if continual else None,
        data=_part(data, "task:", *(["eval."] if held_out else []), *(["method.continual."] if continual else [])))


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


def _sft(run: RunConfig, cache: StageCache, base: Artifact, rows: Artifact, files: dict[str, str],
         tag: str = "") -> tuple[list[Node], Artifact]:
    """The SFT nodes and the model what follows starts from: one sft stage at `method.sft.optim.lr`, or with
    `method.sft.lr_search` one per lr of its grid (`sft_lr<lr>`), then each model's eval on the val split
    (`sft_val_lr<lr>`: after every candidate trained, so no sampling engine holds memory while one trains) and the
    sft_select stage that picks one (training/select.py). Node names and prefixes start with `tag`."""
    sft, search = run.method.sft, run.method.sft.lr_search
    engine = sft.engine(run.trainer)
    world = _world(engine)
    if search is None:
        spec = SFTInputs(base=base, data=rows, model=run.model, sft=sft.at_lr(sft.optim.lr), trainer=engine,
                         seed=run.seed, world=world)
        return [Node(f"{tag}sft", spec, f"{tag}sft")], _artifact(cache, Node(f"{tag}sft", spec))
    suite = _val_suite(run, search.variants, search.num_items)
    assert suite is not None  # config.check_lr_search refused a search with no variant to decide
    data = _part(files, *(f"eval.variants.{n}:" for n in suite.variants))
    trained = [Node(f"{tag}sft_lr{lr_name(lr)}", SFTInputs(base=base, data=rows, model=run.model,
                                                          sft=sft.at_lr(lr), trainer=engine, seed=run.seed,
                                                          world=world),
                    f"{tag}sft_lr{lr_name(lr)}")
               for lr in search.grid]
    vals = [Node(tag + VAL + lr_name(lr), EvalInputs(model_dir=_artifact(cache, node), model=run.model, suite=suite,
                                               generation=run.generation, seed=run.seed, data=data, subsets={}),
                 f"{tag}sft_val/lr{lr_name(lr)}/") for lr, node in zip(search.grid, trained)]
    select = Node(f"{tag}sft_select", SFTSelectInputs(tuple(
        Candidate(lr, _artifact(cache, t), _artifact(cache, v)) for lr, t, v in zip(search.grid, trained, vals))))
    return [*trained, *vals, select], _artifact(cache, select)


def _world(trainer: TrainerConfig) -> int:
    """The training ranks `trainer` runs on here: its processes per node (0: the visible GPUs) x the Slurm nodes."""
    return num_processes(trainer.num_processes) * len(slurm_nodes())


def _local_or_name(run: RunConfig, name: str) -> str:
    """A model named `name`: the folder of that name under the directory the command ran in when there is one
    (a downloaded PRM), else the hub name; resolved here, so the record (and its key) says which one ran."""
    path = Path(name) if Path(name).is_absolute() else Path(run.paths.root_dir) / name
    return str(path) if path.exists() else name


def _with_prm(run: RunConfig, settings: T) -> T:
    """`settings` (STAT's, or a difficult subset's) with its PRM's location resolved."""
    return dataclasses.replace(settings, prm=dataclasses.replace(settings.prm,
                                                                  model=_local_or_name(run, settings.prm.model)))


def _artifact(cache: StageCache, node: Node) -> Artifact:
    """What the stages after `node` consume of it: its key, and where its output will be."""
    return Artifact(node.inputs.key, str(node.stage.artifact(cache.output(node.inputs, node.name))))


def _subsets(run: RunConfig, base: Artifact, data: dict[str, str]) -> dict[str, SubsetInputs]:
    """The subset stage of each eval variant with a `subset:` block, on the base model."""
    out = {}
    for name in run.eval.variants:
        variant = run.eval.variant(name)
        if variant.subset is not None:
            sub = _with_prm(run, variant.subset)
            out[name] = SubsetInputs(base=base, model=run.model, task=variant.task, split=run.eval.split, subset=sub,
                                     generation=run.generation, seed=sub.seed,
                                     data=_part(data, f"eval.variants.{name}:"), variant=name)
    return out


def _method(run: RunConfig, cache: StageCache, base: Artifact, files: dict[str, str], own: bool = True,
            tag: str = "") -> tuple[list[Node], Artifact]:
    """The sft_data and SFT nodes of `run.method` on `base` (names starting with `tag`), and the model they make.
    A continual method first runs the method it continues (nodes named `<that method>_sft_data`, ...; the same
    records, so the same keys, as a run of that method): its SFT model is the student whose new profile the
    data targets, and where SFT starts. `own=False`: without the method's own nodes (its data came out empty)."""
    nodes: list[Node] = []
    parent = run.method.parent()
    if parent is not None:
        nodes, base = _method(dataclasses.replace(run, method=parent), cache, base, files, tag=f"{parent.name}_")
    if not own:
        return nodes, base
    nodes.append(Node(f"{tag}sft_data", _sft_data_inputs(run, base, files)))
    sft, model = _sft(run, cache, base, _artifact(cache, nodes[-1]), files, tag)
    return nodes + sft, model


def plan(run: RunConfig, cache: StageCache, base_dir: Path, own_sft: bool = True) -> list[Node]:
    """The nodes `run` runs, in order, from the config alone; each consumes the artifact (key and path) of the
    stage before it, starting from the base model at `base_dir`. `own_sft=False`: without the method's own SFT
    data and SFT (what follows starts from the model before them)."""
    files = data_fingerprints(run)
    model = Artifact(digest({"base_model": dataclasses.asdict(run.model)}), str(base_dir))
    nodes = [Node(f"subset_{name}", spec) for name, spec in _subsets(run, model, files).items()]
    subsets = {n.inputs.variant: _artifact(cache, n) for n in nodes}
    if run.method.name != "none":
        sft, model = _method(run, cache, model, files, own_sft)
        nodes += sft

    def evaluation(of: Artifact) -> EvalInputs:
        return EvalInputs(model_dir=of, model=run.model, suite=run.eval, generation=run.generation, seed=run.seed,
                          data=_part(files, "eval."), subsets=subsets)

    if run.rl.name != "none":
        rl = RLInputs(start=model, model=run.model, task=run.task, rl=run.rl, trainer=run.trainer,
                      generation=run.generation, seed=run.seed, validation=(val := _validation(run)),
                      data=_part(files, "task:", *(["eval."] if val else [])), world=_world(run.trainer))
        nodes += [Node("pre_rl", evaluation(model), "pre_rl/"), Node("rl", rl)]
        model = _artifact(cache, nodes[-1])
    return nodes + [Node("eval", evaluation(model))]


def stage_inputs(run: RunConfig, cache: StageCache, base_dir: Path) -> dict[str, StageInputs]:
    """Each node's inputs record by its name ("pre_rl": the eval before RL)."""
    return {n.name: n.inputs for n in plan(run, cache, base_dir)}


def runtime(run: RunConfig, run_dir: Path, tracker: Tracker) -> Runtime:
    """What `run`'s stages may use besides their inputs (skillexp/runtime.py)."""
    cache_root = run.paths.stage_cache_dir
    return Runtime(tracker=tracker, scoring=run.scoring, run_dir=run_dir, root_dir=Path(run.paths.root_dir),
                   cache_dir=Path(run.paths.cache_dir),
                   sample_cache=Path(cache_root) / "samples" if cache_root else None)


def _write_stages(run_dir: Path, nodes: list[Node]) -> None:
    atomic_write_json(run_dir / "stages.json", {n.name: {"stage": n.inputs.STAGE, "key": n.inputs.key} for n in nodes})


def memory_plans(run: RunConfig, model_dir: Path, gpu_bytes: int | None = None) -> dict[str, MemoryPlan]:
    """Each training stage's per-GPU memory plan (training/memory.py) on cards of `gpu_bytes` (default: this
    machine's first GPU; none on a machine without one, or for a model whose config.json the plan cannot read)."""
    if gpu_bytes is None:
        if not torch.cuda.is_available():
            return {}
        gpu_bytes = torch.cuda.get_device_properties(0).total_memory
    try:
        hf_config = json.loads((Path(model_dir) / "config.json").read_text())
        ModelShape.from_hf_config(hf_config)
    except (OSError, ValueError, KeyError) as e:
        log.warning("no memory plan for %s: %s", model_dir, e)
        return {}
    out: dict[str, MemoryPlan] = {}
    for node in plan(run, StageCache(None, Path(".")), Path(model_dir)):
        stage = node.stage
        if stage.memory_plan is not None and stage.name not in out:  # the candidates of a search plan alike
            out[stage.name] = stage.memory_plan(node.inputs, hf_config, gpu_bytes)
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
    """Run every node of `run`'s plan in order, with its outputs in the stage cache (linked from `run_dir`) or in
    `run_dir`; returns the final metrics, also written to summary.json."""
    start_run()  # phases and peak RSS from zero: timing.json holds this run's alone
    run_dir.mkdir(parents=True, exist_ok=True)
    config = to_plain(run)
    atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    seed_everything(run.seed)
    cache_root = run.paths.stage_cache_dir
    cache = StageCache(Path(cache_root) if cache_root else None, run_dir)
    model_dir = resolve_model_dir(run.model, Path(run.paths.cache_dir))
    nodes = plan(run, cache, model_dir)
    try:  # checks that need the model's config.json: a user's settings that cannot work, told in one line
        if (model_dir / "config.json").exists():  # the rollout and eval engines' split, before a model loads
            run.generation.check_model(json.loads((model_dir / "config.json").read_text()))
        check_memory(memory_plans(run, model_dir))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    data = next((n.inputs for n in nodes if isinstance(n.inputs, SFTDataInputs)), None)
    if data is not None and data.teacher is not None and not (cache.enabled and cache.output(data).exists()):
        probe_teacher(data.teacher)  # an API teacher that cannot answer fails now, not minutes in
    # where this run lives (a requeued Slurm job appears as a new attempt with the same run dir)
    atomic_write_json(run_dir / "job.json", {"pid": os.getpid(), "host": socket.gethostname(), "argv": sys.argv,
                                             "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
                                             "restarts": int(os.environ.get("SLURM_RESTART_COUNT", 0)),
                                             "started": time.time()})
    _write_stages(run_dir, nodes)
    log.info("stages: %s; run dir: %s", " -> ".join(dict.fromkeys(n.inputs.STAGE for n in nodes)), run_dir)

    tracker = Tracker(run.logger, run_dir, config)
    rt = runtime(run, run_dir, tracker)
    summary: dict[str, float] = {}
    try:
        # the stages that sample share one engine, started when the first needs it (after SFT and the subsets:
        # training and a PRM get the GPU to themselves) and kept to the end, weights swapped in
        with contextlib.ExitStack() as stack:
            engine, done = None, 0
            while done < len(nodes):
                node = nodes[done]
                stage = node.stage
                if stage.uses_engine and engine is None:
                    engine = stack.enter_context(SharedEngine())
                at = rt.at(node.prefix, engine if stage.uses_engine else None)
                with phase(node.inputs.STAGE):
                    out = cache.run(node.inputs, lambda o, n=node, r=at: n.stage.run(n.inputs, o, r), node.name)
                if node.inputs.key not in cache.built and stage.replay is not None:
                    stage.replay(node.inputs, out, at)  # every run's metrics hold its own numbers
                if stage.summary is not None:
                    summary.update(stage.summary(node.inputs, out, at))
                done += 1
                if node.name == "pre_rl":
                    log.info("before RL:\n%s", format_table(summary, "pre_rl/"))
                if isinstance(node.inputs, SFTDataInputs) and is_empty(out):  # method.if_empty=base
                    own = node.name == "sft_data"  # not the data of the method a continual one continues
                    log.warning("no SFT data: SFT skipped, the run goes on from the %s model (sft/skipped=1)",
                                "previous" if own and run.method.parent() else "base")
                    summary["sft/skipped"] = 1.0
                    tracker.log({"sft/skipped": 1.0})
                    after = plan(run, cache, model_dir, own_sft=False) if own else plan(dataclasses.replace(
                        run, method=dataclasses.replace(run.method, name="none")), cache, model_dir)
                    ran = {n.inputs.key for n in nodes[:done]}  # what follows starts from that model, keyed so
                    nodes = nodes[:done] + [n for n in after if n.inputs.key not in ran]
                    _write_stages(run_dir, nodes)
        tracker.set_summary(summary)
        timing = write_timing(run_dir)  # before summary.json, whose presence marks the run finished
        log.info("time per phase (s): %s; peak RSS %s GiB", ", ".join(f"{k} {v:.0f}" for k, v in
                                                                     timing["phases_s"].items()),
                 f"{timing['peak_rss_gib']:.2f}" if timing["peak_rss_gib"] is not None else "unknown")
        atomic_write_json(run_dir / "summary.json", summary)
        return summary
    finally:
        tracker.finish()
