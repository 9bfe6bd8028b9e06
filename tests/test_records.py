"""Every field of a stage's record is one the stage reads (or, declared in `KEY_ONLY`, one that only keys what it
reads by other means), and a stage runs from its record and the runtime alone: in a process that cannot import the
run's config, the pipeline or Hydra, from a directory without the project's configs."""
from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp import stages
from skillexp.stage_code import closure
from skillexp.stage_cache import StageCache
from skillexp.utils.schema import to_plain
from tests.conftest import ROOT, subprocess_env


def _attributes_read(module: str) -> set[str]:
    """Every attribute name read anywhere in `module` and the skillexp code it imports (a superset of what the
    stage reads from its record: a field whose name is never read as an attribute there is certainly unread)."""
    return {node.attr for path in closure(module).values() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)}


def _unread(record: type, module: str) -> list[str]:
    fields = [f.name for f in dataclasses.fields(record)]
    assert set(record.KEY_ONLY) <= set(fields), f"{record.__name__}.KEY_ONLY names no field of it"
    return [f for f in fields if f not in record.KEY_ONLY and f not in _attributes_read(module)]


@pytest.mark.parametrize("name", sorted(stages.MODULES))
def test_every_field_of_a_record_is_read_by_its_stage(name: str) -> None:
    record = stages.get(name).inputs
    unread = _unread(record, stages.MODULES[name])
    assert not unread, (f"{record.__name__} holds {unread}, which the {name} stage never reads: drop them from the "
                        f"record (they key its outputs for nothing), or list them in KEY_ONLY if they only key what "
                        f"it reads by other means")


def test_the_check_finds_a_field_nobody_reads() -> None:
    select = stages.get("sft_select").inputs

    @dataclasses.dataclass(frozen=True)
    class Padded(select):  # type: ignore[valid-type, misc]
        no_stage_reads_this: int = 0

    assert _unread(Padded, stages.MODULES["sft_select"]) == ["no_stage_reads_this"]
    Keyed = dataclasses.make_dataclass("Keyed", [], bases=(Padded,), frozen=True,
                                       namespace={"KEY_ONLY": ("no_stage_reads_this",)})
    assert _unread(Keyed, stages.MODULES["sft_select"]) == []


# runs `stage` from `spec.json` ({"stage", "inputs", "out_dir", "runtime"}, as the rank launcher writes it) with the
# run's config, the pipeline and Hydra unimportable
RECORD_ONLY = """
import importlib.abc, json, sys
from pathlib import Path

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in ("skillexp.config", "skillexp.pipeline") or name.split(".")[0] == "hydra":
            raise ImportError(f"{name} is out of a stage's reach")

sys.meta_path.insert(0, Blocked())
from skillexp import stages
from skillexp.generation.shared import SharedEngine
from skillexp.runtime import Runtime
from skillexp.utils.schema import from_dict

spec = json.loads(Path(sys.argv[1]).read_text())
stage = stages.get(spec["stage"])
with SharedEngine() as engine:
    rt = Runtime.from_dict(spec["runtime"]).at(spec["prefix"], engine if stage.uses_engine else None)
    out = Path(spec["out_dir"])
    out.mkdir(parents=True)
    stage.run(from_dict(stage.inputs, spec["inputs"]), out, rt)
    rt.tracker.finish()
assert "skillexp.config" not in sys.modules and "hydra" not in sys.modules
"""


@pytest.mark.slow
def test_stages_run_from_their_record_alone(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The SFT data, SFT, GRPO and eval stages of a tiny run, each in a fresh process from its record (the upstream
    outputs it names) in an empty directory: the outputs the pipeline would have written."""
    from skillexp.pipeline import runtime, stage_inputs
    from skillexp.tracking import Tracker
    from tests.rl.test_grpo import tiny_run

    run = tiny_run(["method=sft", "method.num_questions=64", "method.sft.max_steps=2", "rl.steps=1",
                    "eval=countdown_cpu", "eval.num_items=2"])
    cache = StageCache(tmp_path / "stages", tmp_path / "run")
    records = stage_inputs(run, cache, tiny_model_dir)
    tracker = Tracker(run.logger, tmp_path / "run", {})
    rt = runtime(run, tmp_path / "run", tracker).to_dict()
    tracker.finish()
    script = tmp_path / "stage.py"
    script.write_text(RECORD_ONLY)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("sft_data", "sft", "rl", "eval"):
        record = records[name]
        out = cache.output(record, name)
        spec = tmp_path / f"{name}.json"
        spec.write_text(json.dumps({"stage": record.STAGE, "inputs": to_plain(record), "out_dir": str(out),
                                    "runtime": rt, "prefix": ""}))
        done = subprocess.run([sys.executable, str(script), str(spec)], cwd=empty, capture_output=True, text=True,
                              env=subprocess_env(PYTHONPATH=str(ROOT)))
        assert done.returncode == 0, (name, done.stderr[-3000:])
        assert stages.get(record.STAGE).artifact(out).exists(), name
    assert json.loads((cache.output(records["eval"], "eval") / "eval_metrics.json").read_text())
