"""Find the finished runs under a sweep dir and decide which of them are seeds of the same thing.

A run is any directory with a `summary.json` (written last by the pipeline, so its presence means finished); a
directory with `config.yaml` or `.hydra/` but no summary is an unfinished run, reported and skipped.

Grouping never averages runs that differ in anything but the seed. Every resolved config key that varies across
the runs is classified:
- method side (`method.*`, `teacher.*`: the teacher is part of a STAT method) and RL side (`rl.*`): part of the
  row label. The label starts from the SFT method (`method.name`, plus the SkillFactory ablation, whose option
  files keep `name: skillfactory`) and the RL stage (`rl.name`). A key that still varies within one SFT method (or
  one RL stage), such as a sweep over `method.sft.epochs`, is appended as `[key=value]` to the runs of that method;
  so is an RL key that differs between two methods' RL runs.
- anything else (model, task, eval suite, trainer, generation): a *setting*. Each setting gets its own table
  section and figures, with the keys that tell settings apart named.
Keys implied by ones already chosen are dropped (`model.path` follows `model.name`), names first. Bookkeeping
keys (seed, run name, paths, logger, tags) and the papers' quotes (`eval.paper`) never split runs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

# `precision.*` says why a precision was picked; the values themselves are model.dtype and trainer.precision;
# `eval.paper.*` is what the report quotes beside the runs (runs made before a quote was corrected are the same)
IGNORED = ("seed", "run_name", "tags", "paths.", "logger.", "precision.", "eval.paper")
METHOD_SIDE = ("method.", "teacher.")
RL_SIDE = ("rl.",)


class ReportError(Exception):
    """Bad input: the message names the problem and the fix (the CLI exits with status 2)."""


@dataclass(frozen=True)
class Run:
    path: Path
    config: dict[str, Any]
    summary: dict[str, float]
    method: str = ""  # SFT method label, with varying method-side keys: "sft", "skillfactory_no_reflections"
    rl: str = "none"  # RL stage label: "grpo", "grpo_cpu [rl.steps=4]"
    setting: tuple[tuple[str, str], ...] = ()  # (key, value) of the keys that tell this run's setting apart

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def variants(self) -> list[str]:
        """The eval suite's task variants, in the suite's order."""
        return list(self.config.get("eval", {}).get("variants", {}))

    def reward_curve(self, key: str = "rl/reward_mean") -> dict[int, float]:
        """`key` per RL step from metrics.jsonl; a resumed run logs some steps twice, the last value wins."""
        curve: dict[int, float] = {}
        path = self.path / "metrics.jsonl"
        if path.exists():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line) if line.strip() else {}
                    if key in row and row.get("step") is not None:
                        curve[int(row["step"])] = float(row[key])
        return curve


@dataclass
class Sweep:
    root: Path
    runs: list[Run]
    setting_keys: list[str]
    warnings: list[str]


def find_runs(root: Path, exclude: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(finished, unfinished) run dirs below `root`, sorted; a run dir's own subdirectories are not searched."""
    finished, unfinished = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if exclude is not None and here.resolve() == exclude.resolve():
            dirnames.clear()
            continue
        if "summary.json" in filenames:
            finished.append(here)
        elif "config.yaml" in filenames or ".hydra" in dirnames:
            unfinished.append(here)
        else:
            dirnames.sort()
            continue
        dirnames.clear()
    return sorted(finished), sorted(unfinished)


def load_run(path: Path) -> Run:
    config_file = path / "config.yaml"
    if not config_file.exists():
        raise ReportError(f"{path} has a summary.json but no config.yaml, so its method and seed are unknown")
    config = yaml.safe_load(config_file.read_text())
    summary = json.loads((path / "summary.json").read_text())
    if not isinstance(config, dict) or "seed" not in config or "method" not in config:
        raise ReportError(f"{config_file} is not a skillexp run config (no seed or method)")
    return Run(path, config, summary)


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys to JSON-encoded leaves (lists stay whole: a list is one setting)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return out


def base_method(config: dict[str, Any]) -> str:
    method = config["method"]
    ablation = (method.get("skillfactory") or {}).get("ablation", "none")
    return method["name"] if ablation in (None, "none") else f"{method['name']}_{ablation}"


def _varies_in(key: str, by: list[str], flats: list[dict[str, str]]) -> set[tuple[str | None, ...]]:
    """The groups of runs with equal values of `by` inside which `key` takes more than one value."""
    values: dict[tuple[str | None, ...], set[str | None]] = {}
    for f in flats:
        values.setdefault(tuple(f.get(b) for b in by), set()).add(f.get(key))
    return {group for group, seen in values.items() if len(seen) > 1}


def _order(key: str) -> tuple[bool, int, str]:
    """Names before parameters, shallow before deep: the key that explains the most comes first."""
    return not key.endswith((".name", ".kind")), key.count("."), key


def _value(text: str | None) -> str:
    value = None if text is None else json.loads(text)
    return value if isinstance(value, str) else json.dumps(value)


def assign_groups(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """Label every run (method, rl, setting) as the module docstring says; returns them and the setting keys."""
    flats = []
    for run in runs:
        flat = {k: v for k, v in flatten(run.config).items() if not k.startswith(IGNORED)}
        flat["_method"], flat["_rl"] = base_method(run.config), str(run.config.get("rl", {}).get("name", "none"))
        flats.append(flat)
    keys = sorted({k for f in flats for k in f}, key=_order)
    varying = [k for k in keys if len({f.get(k) for f in flats}) > 1 and not k.startswith("_")]
    setting: list[str] = []
    for key in varying:
        if not key.startswith(METHOD_SIDE + RL_SIDE) and _varies_in(key, setting, flats):
            setting.append(key)
    # method-side keys count within one method (rl-side within one RL stage), so they label only the runs where
    # they vary, and an RL setting that differs between two methods' runs is named instead of hidden
    extras: dict[str, tuple[list[str], set[tuple[str | None, ...]]]] = {}
    for key in varying:
        base = "_rl" if key.startswith(RL_SIDE) else "_method" if key.startswith(METHOD_SIDE) else None
        if base is not None:
            by = [base, *setting, *(k for k, (b, _) in extras.items() if b[0] == base)]
            if groups := _varies_in(key, by, flats):
                extras[key] = (by, groups)
    labelled = [replace(run, method=_label(flat, "_method", extras), rl=_label(flat, "_rl", extras),
                        setting=tuple((k, _value(flat.get(k))) for k in setting))
                for run, flat in zip(runs, flats)]
    return labelled, setting


def _label(flat: dict[str, str], base: str, extras: dict[str, tuple[list[str], set[tuple[str | None, ...]]]]) -> str:
    """`flat[base]` plus `[key=value, ...]` for the extra keys that vary within this run's group."""
    parts = [f"{k}={_value(flat.get(k))}" for k, (by, groups) in extras.items()
             if by[0] == base and tuple(flat.get(b) for b in by) in groups]
    return f"{flat[base]} [{', '.join(parts)}]" if parts else flat[base]


def _dedupe(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """One run per (setting, method, rl, seed): the newest; the others are named in a warning."""
    newest: dict[tuple[Any, ...], Run] = {}
    warnings = []
    for run in sorted(runs, key=lambda r: (r.path / "summary.json").stat().st_mtime):
        key = (run.setting, run.method, run.rl, run.seed)
        if key in newest:
            warnings.append(f"{newest[key].path} and {run.path} are the same config and seed; using the newer, "
                            f"{run.path}")
        newest[key] = run
    return [r for r in runs if newest[(r.setting, r.method, r.rl, r.seed)] is r], warnings


def collect(root: Path, exclude: Path | None = None) -> Sweep:
    """Every finished run below `root` (except under `exclude`, the report's own dir), labelled and grouped."""
    if not root.is_dir():
        raise ReportError(f"{root} is not a directory: pass a sweep dir (Hydra's multirun dir, e.g. "
                          f"outputs/multiruns/<date>) or a run dir")
    finished, unfinished = find_runs(root, exclude)
    warnings = [f"skipping unfinished run {p} (no summary.json)" for p in unfinished]
    runs = []
    for path in finished:
        try:
            runs.append(load_run(path))
        except (ReportError, ValueError, yaml.YAMLError) as e:
            warnings.append(f"skipping {path}: {e}")
    if not runs:
        raise ReportError(f"no finished runs under {root} (a run is finished when its dir has summary.json; "
                          f"{len(unfinished)} unfinished): point at a sweep whose runs completed, or wait for them")
    runs, setting_keys = assign_groups(runs)
    runs, dup_warnings = _dedupe(runs)
    return Sweep(root, runs, setting_keys, warnings + dup_warnings)


def settings(runs: Iterable[Run]) -> list[tuple[tuple[str, str], ...]]:
    """The distinct settings, in a stable order."""
    return sorted({r.setting for r in runs})
