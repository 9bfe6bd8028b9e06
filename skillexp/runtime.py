"""What a stage may use besides its inputs record: where things are and how to run, never what to compute.

A stage's result is a function of its inputs (`stage_cache.StageInputs`), which its cache key hashes. Everything
else a stage needs is here: the tracker its metrics go to, the scoring workers, the directories for caches and for
relative paths, the run dir. Nothing here may change what a stage writes; a setting that does belongs in a record.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skillexp.tasks.scoring import ScoringConfig
from skillexp.tracking import Tracker


@dataclass
class Runtime:
    tracker: Tracker
    scoring: ScoringConfig
    run_dir: Path  # this run's directory (launched ranks find the W&B run id there)
    root_dir: Path  # where relative paths in the config resolve from: the directory the command ran in
    cache_dir: Path  # converted models, teacher answers (`paths.cache_dir`)
    sample_cache: Path | None = None  # the base model's samples shared across runs (with the stage cache), or None

    def local_or_name(self, name: str) -> str:
        """`name` as a path under `root_dir` when one exists there, else as given (a hub name)."""
        path = Path(name) if Path(name).is_absolute() else self.root_dir / name
        return str(path) if path.exists() else name
