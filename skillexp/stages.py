"""The stage protocol and its registry: what a stage declares, and where the pipeline and the rank launcher find it.

A stage is a function of a frozen inputs record (`stage_cache.StageInputs`: exactly the settings it reads and the
artifacts it consumes, which its cache key hashes) that writes an output directory. It declares, with `register`:

- `inputs`: its record type (whose `STAGE` is the stage's name);
- `run(inputs, out_dir, rt) -> None`: build the output in `out_dir`, resuming what a killed build left there;
  everything else it may use is in the `Runtime` (the tracker, with `rt.prefix` before its metric names; the shared
  sampling engine `rt.engine` when it declares `uses_engine`);
- `output`: the file or directory inside `out_dir` that the stages after it consume ("model", "sft_data.jsonl");
- optionally `summary` (the metrics its output adds to the run's summary.json), `replay` (what a run that reuses
  the output from the cache logs again, so that every run's metrics hold its own numbers), `on_rank` (one rank of a
  torchrun launch: `training/launch.py` finds it here, so the launcher imports no stage) and `memory_plan`.

Each stage module registers itself when imported; `get(name)` imports the module `MODULES` names for it, so a
process that only runs one rank of one stage imports that stage alone.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from skillexp.runtime import Runtime
from skillexp.stage_cache import StageInputs

# every stage, by the module that registers it (in the order a run may reach them)
MODULES = {"subset": "skillexp.eval.subset", "sft_data": "skillexp.methods.build", "sft": "skillexp.training.sft",
           "sft_select": "skillexp.training.select", "rl": "skillexp.rl.stage", "eval": "skillexp.eval.stage"}

Build = Callable[[Any, Path, Runtime], None]
Summary = Callable[[Any, Path, Runtime], dict[str, float]]


@dataclass(frozen=True)
class Stage:
    inputs: type[StageInputs]
    run: Build
    output: str = ""  # what consumers read inside the output dir ("" = the dir itself)
    uses_engine: bool = False  # samples through the run's shared engine (`rt.engine`)
    summary: Summary | None = None
    replay: Build | None = None
    on_rank: Callable[[Any, Path, Runtime], Any] | None = None
    # (inputs, the model's shape, GPU bytes) -> its per-GPU MemoryPlan (training/memory.py)
    memory_plan: Callable[[Any, Any, int], Any] | None = None

    @property
    def name(self) -> str:
        return self.inputs.STAGE

    def artifact(self, out_dir: Path) -> Path:
        """Where in `out_dir` the stages after this one read its output."""
        return out_dir / self.output if self.output else out_dir


_REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Declare `stage` under its record's STAGE name (each stage module does this once, at import)."""
    if stage.name not in MODULES:
        raise ValueError(f"stage {stage.name!r} is not in skillexp/stages.py's MODULES: add it there, with the module "
                         "that registers it.")
    _REGISTRY[stage.name] = stage
    return stage


def get(name: str) -> Stage:
    """The stage registered as `name`, importing the module that registers it."""
    if name not in _REGISTRY:
        if name not in MODULES:
            raise KeyError(f"no stage {name!r}: the stages are {sorted(MODULES)}")
        importlib.import_module(MODULES[name])
    return _REGISTRY[name]
