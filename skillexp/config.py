"""Typed schema of a run, validated once at start-up from the composed Hydra config.

Config groups mirror the package: each group's schema lives in the package it configures (`model/` →
models/config.py, `method/` → methods/config.py, `trainer/` → training/config.py, `rl/` → rl/config.py,
`eval/` → eval/config.py, `generation/` → generation/config.py, `teacher/` → teachers/config.py, `logger/` →
tracking.py, `scoring` → tasks/scoring.py; `task/` and the eval suite's variants are validated by each task's own
dataclass).
This module holds the run's own (`paths`, `RunConfig`) and the start-up checks.
`load_run_config` turns a DictConfig into a `RunConfig` or raises a `ConfigError` naming the key and the fix.
"""
from __future__ import annotations

import dataclasses
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from skillexp.eval.config import EvalConfig
from skillexp.generation.config import GenerationConfig
from skillexp.methods.config import MethodConfig
from skillexp.models.config import ModelConfig
from skillexp.rl.config import GRPOConfig
from skillexp.tasks import TaskSpec
from skillexp.tasks.scoring import ScoringConfig
from skillexp.teachers.config import TeacherConfig
from skillexp.tracking import LoggerConfig
from skillexp.training.config import TrainerConfig
from skillexp.utils.schema import ConfigError, UnknownKeyError, from_dict, missing_value_message, unknown_key_message

if TYPE_CHECKING:
    from skillexp.precision import Hardware
    from skillexp.teachers.base import SkillCatalogue


@dataclass
class PathsConfig:
    root_dir: str  # where relative paths in configs resolve from (the directory the command ran in)
    cache_dir: str  # converted models, built tiny models, downloaded wheels; shared across runs
    log_dir: str  # parent of Hydra's run and sweep dirs
    # stage outputs shared across runs, keyed by what produced them (skillexp/stage_cache.py); null: each run
    # keeps its stages in its own run dir
    stage_cache_dir: str | None = None
    # hub datasets as `skillexp data prepare` wrote them (runs never read the hub); exported as SKILLEXP_DATA_DIR
    data_dir: str | None = None


# keys that moved whose new name a close-match search would not find (renamed leaves): the error names the new one
MOVED_KEYS = {"eval.score_workers": "scoring.workers", "eval.score_timeout_s": "scoring.timeout_s",
              "method.stat.target_size": "method.num_pairs"}


@dataclass
class RunConfig:
    seed: int
    run_name: str
    paths: PathsConfig
    model: ModelConfig
    task: TaskSpec  # the training task: {kind: <task>, ...params} in the config, parsed when it is read
    method: MethodConfig
    rl: GRPOConfig
    trainer: TrainerConfig
    eval: EvalConfig
    generation: GenerationConfig
    logger: LoggerConfig
    scoring: ScoringConfig = field(default_factory=ScoringConfig)  # the task checkers' workers, for every stage
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # STAT's teacher (teacher=none: no teacher)
    tags: list[str] = field(default_factory=list)
    # written at start-up, not a setting: the precision `auto` resolved to, why, and the hardware it read
    # (skillexp/precision.py); model.dtype and trainer.precision hold the resolved values
    precision: dict[str, Any] = field(default_factory=dict)

    def task_specs(self) -> dict[str, TaskSpec]:
        """Every task the run reads, by its config path: the training task, a continual method's profile task and
        the eval suite's variants."""
        profile = self.method.continual.profile if self.method.parent() is not None else None
        return {"task": self.task, **({"method.continual.profile": profile} if profile else {}),
                **{f"eval.variants.{n}": s for n, s in self.eval.tasks().items()}}


def schema_defaults(cls: type) -> dict[str, Any]:
    """Every field of a schema dataclass with its default ("???" when required), as plain data."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            value = "???"
        out[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return out


SCHEMAS = {"model": ModelConfig, "method": MethodConfig, "trainer": TrainerConfig, "generation": GenerationConfig,
           "logger": LoggerConfig, "eval": EvalConfig, "rl": GRPOConfig, "teacher": TeacherConfig}


def sweep_group(name: str) -> str:
    """`${sweep_group:<name>}`: a W&B group per sweep. In a multirun, `<name>-<sweep dir name>`, so that each sweep is
    its own comparison on the dashboard (and the report run joins it); `name` alone for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{name}-{Path(HydraConfig.get().sweep.dir).name}"
    return name


PROJECT_DIR = Path(__file__).resolve().parent.parent  # the checkout: conf/, and .cache/ by default


def launch_dir() -> str:
    """`${launch_dir:}`: the directory the command ran in. Hydra's `${hydra:runtime.cwd}` says the same inside a
    job, but a sweeper resolves `hydra.sweep.dir` before Hydra's config is set, where only the process knows."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()


def help_groups() -> str:
    """`${help_groups:}` for `--help`: each config group with its options, read from conf/ (without the schema
    entries and machine-local files), plus the launchers."""
    conf = PROJECT_DIR / "conf"
    lines = []
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "local")):
        options = sorted(f.stem for f in group.glob("*.yaml"))
        lines.append((group.name, ", ".join(options)))
    launchers = sorted(f.stem for f in (conf / "hydra" / "launcher").glob("*.yaml"))
    lines.append(("hydra/launcher", f"basic (the default: one run after another), {', '.join(launchers)}"))
    return "\n".join(textwrap.fill(text, 116, initial_indent=f"  {name + ':':<16}", subsequent_indent=" " * 18)
                     for name, text in lines)


def read_examples(run: RunConfig) -> list[dict[str, str]]:
    """BOLT's in-context examples: the file `method.distill.examples` names, else the task's shipped one (read at
    start-up, so that a bad file fails then, and its contents go into the sft_data stage's key)."""
    from skillexp.methods.distill import load_examples

    try:
        return load_examples(run.method.distill, run.task.kind, run.paths.root_dir)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"method.distill.examples: {e}") from e


def compose_run(overrides: list[str]) -> RunConfig:
    """The run these overrides make, composed as `skillexp <overrides>` would (without Hydra's run dirs)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_schemas()
    with initialize_config_dir(config_dir=str(PROJECT_DIR / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return from_dict(RunConfig, OmegaConf.to_container(cfg, resolve=True))


def register_schemas() -> None:
    """Store each group's full key set as `<group>/_schema`, which every option file lists first in its defaults,
    so that any key can be overridden from the command line without `+` and the composed config shows them all;
    register our resolvers."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        cs.store(group=group, name="_schema", node=schema_defaults(cls))
    for name, fn in {"sweep_group": sweep_group, "launch_dir": launch_dir,
                     "project_dir": lambda: str(PROJECT_DIR), "help_groups": help_groups}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def read_catalogue(run: RunConfig) -> SkillCatalogue:
    """STAT's skill catalogue: the file `method.stat.catalogue` names, else the task's shipped one (read at
    start-up, so that a bad file fails then, and its contents go into the sft_data stage's key)."""
    from skillexp.methods.stat.skills import catalogue_source
    from skillexp.teachers.base import SkillCatalogue

    task = run.task.build()
    try:
        return SkillCatalogue.load(catalogue_source(run.method.stat.catalogue, task, run.paths.root_dir))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"method.stat.catalogue: {e}") from e


def resolve_precision(run: RunConfig, hw: Hardware | None = None) -> RunConfig:
    """`run` with `model.dtype` / `trainer.precision` `auto` resolved on `hw` (default: this machine) and the choice
    recorded in `run.precision`: before any stage key is computed, so the keys hold the precision that ran."""
    from skillexp.precision import resolve_run

    resolved, choice, hw = resolve_run(run, hw)
    return dataclasses.replace(resolved, precision=choice.record(hw))


def check_batches(run: RunConfig, gpus_per_node: int | None = None, nodes: int | None = None) -> None:
    """Every batch geometry of the run on this allocation's ranks (trainer.num_processes per node, its 0 resolved
    to the visible GPUs or to `gpus_per_node`, x the Slurm nodes or `nodes`: a launcher preset's): SFT's batch,
    GRPO's step, update and micro-batch, the rollout engines' split. All that do not fit are told at once, each
    with values that would, so that a run being shrunk is fixed in one go."""
    from skillexp.training.launch import num_processes, slurm_nodes

    per_node = run.trainer.num_processes or gpus_per_node or num_processes(0)
    nodes = nodes or len(slurm_nodes())
    world = per_node * nodes
    problems = []
    if run.method.name != "none":  # SFT on its own engine (method.sft.trainer) or the run's
        sft = run.method.sft.engine(run.trainer)
        sft_world = (sft.num_processes or gpus_per_node or num_processes(0)) * nodes
        problems += [p + (f" (SFT's ranks: method.sft.trainer={sft.name})" if sft is not run.trainer else "")
                     for p in run.method.sft.batch_problems(sft, sft_world)]
    problems += run.rl.batch_problems(run.trainer.micro_batch_size, world)
    if run.rl.name != "none" and run.generation.backend == "vllm" and world > 1:
        try:
            run.generation.engines(per_node, world)
        except ValueError as e:
            problems.append(str(e).rstrip("."))
    if problems:
        ranks = f"{world} rank{'s' if world > 1 else ''}"
        told = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)) if len(problems) > 1 else problems[0]
        raise ConfigError(f"the batch sizes do not fit together on {ranks}: {told}.")


def check_lr_search(run: RunConfig) -> None:
    """`method.sft.lr_search` decides on eval variants that exist and have a val split of their own (not a
    difficult subset, which is of the test split)."""
    search = run.method.sft.lr_search
    if search is None or run.method.name == "none":
        return
    with_subset = sorted(n for n in run.eval.variants if run.eval.variant(n).subset is not None)
    if search.variants is None and len(with_subset) == len(run.eval.variants):
        raise ConfigError(f"method.sft.lr_search decides on the eval variants without a difficult subset, and every "
                          f"variant of eval={run.eval.name} has one: name variants in method.sft.lr_search.variants.")
    for name in search.variants or []:
        if name not in run.eval.variants:
            raise ConfigError(f"method.sft.lr_search.variants names {name!r}, which is not a variant of "
                              f"eval={run.eval.name} ({sorted(run.eval.variants)}).")
        if name in with_subset:
            raise ConfigError(f"method.sft.lr_search.variants names {name!r}, a difficult subset of the test split: "
                              f"name a variant evaluated on its own val split (one of "
                              f"{sorted(set(run.eval.variants) - set(with_subset))}).")


def prepare_command(data_dir: str, suite: str) -> str:
    """The command that prepares what the current run reads: its own overrides when Hydra runs it, else its
    eval suite."""
    from hydra.core.hydra_config import HydraConfig

    overrides = [o for o in (HydraConfig.get().overrides.task if HydraConfig.initialized() else [])
                 if not o.startswith(("hydra.", "paths.data_dir"))]
    return f"skillexp data prepare {' '.join(overrides) or suite} --out {data_dir}"


def load_run_config(cfg: DictConfig) -> RunConfig:
    """Resolve interpolations, validate every group, and build every task once so bad task params fail now."""
    from skillexp.models import check_model
    from skillexp.tasks.sources import MissingData

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)  # Hydra's own node (present in tests' compose) is not ours to validate
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except (MissingMandatoryValue, InterpolationToMissingValueError) as e:  # `???`, or one an interpolation reads
        raise ConfigError(missing_value_message(e) or str(e)) from e
    if "precision" in data:
        raise ConfigError("`precision` is written by skillexp at start-up (the precision `auto` resolved to): set "
                          "trainer.precision and model.dtype instead.")
    try:
        run = from_dict(RunConfig, data)
    except UnknownKeyError as e:
        raise ConfigError(unknown_key_message(RunConfig, e.full_key, MOVED_KEYS)) from e
    if run.teacher.kind == "openai" and run.teacher.base_url is None and os.environ.get("OPENAI_BASE_URL"):
        # the endpoint the client would read from the environment, in the config (and the keys) instead
        run = dataclasses.replace(run, teacher=dataclasses.replace(run.teacher,
                                                                  base_url=os.environ["OPENAI_BASE_URL"]))
    try:
        run = resolve_precision(run)
        check_model(run.model, Path(run.paths.cache_dir))
        check_batches(run)
        check_lr_search(run)
        if run.method.needs_teacher():
            run.teacher.check_usable(run.method.name)
        if run.method.name.startswith("stat"):  # STAT's methods are the ones with a catalogue
            read_catalogue(run)
        profile = run.method.continual.profile
        if run.method.parent() is not None and profile is not None and profile.kind != run.task.kind:
            raise ValueError(f"method.continual.profile.kind={profile.kind!r}: the profile is judged against the "
                             f"training task's skill catalogue, so it must be a {run.task.kind!r} task too.")
        if run.method.name == "bolt":
            read_examples(run)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from e
    if run.paths.data_dir:  # where tasks read prepared hub datasets (skillexp/tasks/sources.py), in every process
        os.environ["SKILLEXP_DATA_DIR"] = str(Path(run.paths.data_dir).resolve())
    tasks = {path: spec.build(name=path.rsplit(".", 1)[-1], path=path) for path, spec in run.task_specs().items()}
    for path, task in tasks.items():  # every data file the run will read: opened and checked now
        try:
            task.check_source()
        except MissingData as e:
            raise ConfigError(f"{path}: the hub dataset {e.source} is not prepared ({e.file} is missing): run "
                              f"`{prepare_command(str(e.file.parent), run.eval.name)}` on a machine that can "
                              f"reach the hub, or point paths.data_dir at where it was prepared.") from e
        except (FileNotFoundError, ValueError) as e:
            raise ConfigError(f"{path}: {e}") from e
    return run
