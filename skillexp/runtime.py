"""What a stage may use besides its inputs record: where things are and how to run, never what to compute.

A stage's result is a function of its inputs (`stage_cache.StageInputs`), which its cache key hashes. Everything
else a stage needs is here: the tracker its metrics go to (and the prefix of their names), the scoring workers, the
directories for caches and for relative paths, the run dir, the run's shared sampling engine. Nothing here may
change what a stage writes; a setting that does belongs in a record.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillexp.tasks.scoring import ScoringConfig
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.utils.schema import from_dict

if TYPE_CHECKING:
    from skillexp.generation.shared import SharedEngine


@dataclass
class Runtime:
    tracker: Tracker
    scoring: ScoringConfig
    run_dir: Path  # this run's directory (launched ranks find the W&B run id there)
    root_dir: Path  # where relative paths in the config resolve from: the directory the command ran in
    cache_dir: Path  # converted models, teacher answers (`paths.cache_dir`)
    sample_cache: Path | None = None  # the base model's samples shared across runs (with the stage cache), or None
    prefix: str = ""  # before the names of the metrics the stage logs ("pre_rl/", "sft_lr0.0002")
    engine: SharedEngine | None = None  # the run's sampling engine, lent to the stages that sample (never to ranks)

    def to_dict(self) -> dict[str, Any]:
        """What a launched rank rebuilds this from (`from_dict`): everything but the engine, which stays here."""
        return {"logger": asdict(self.tracker.cfg), "config": self.tracker.config, "scoring": asdict(self.scoring),
                "run_dir": str(self.run_dir), "root_dir": str(self.root_dir), "cache_dir": str(self.cache_dir),
                "sample_cache": None if self.sample_cache is None else str(self.sample_cache), "prefix": self.prefix}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Runtime:
        """A rank's runtime: its own tracker on the same run (rank 0 logs to the run's W&B run), no engine."""
        run_dir = Path(data["run_dir"])
        return cls(Tracker(from_dict(LoggerConfig, data["logger"]), run_dir, data["config"]),
                   from_dict(ScoringConfig, data["scoring"]), run_dir, Path(data["root_dir"]), Path(data["cache_dir"]),
                   None if data["sample_cache"] is None else Path(data["sample_cache"]), data["prefix"])

    def at(self, prefix: str, engine: SharedEngine | None = None) -> Runtime:
        """This runtime for one stage: its metric prefix and the engine it may sample on."""
        return replace(self, prefix=prefix, engine=engine)
