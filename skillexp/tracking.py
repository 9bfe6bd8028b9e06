"""One small logging interface: every scalar goes to `metrics.jsonl`, and to W&B when it is enabled.

W&B runs offline unless configured otherwise, so a machine without network never waits on it; the JSONL file is
the source of truth that reports read, whatever the W&B mode.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from skillexp.config import LoggerConfig

log = logging.getLogger(__name__)


class Tracker:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: dict[str, Any]):
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._wandb = None
        self._stages: set[str] = set()
        if cfg.backend == "wandb" and cfg.mode != "disabled":
            import wandb

            os.environ.setdefault("WANDB_DIR", str(run_dir))
            self._wandb = wandb.init(
                project=cfg.project,
                entity=cfg.entity,
                group=cfg.group,
                name=cfg.name,
                tags=list(cfg.tags) or None,
                job_type=cfg.job_type,
                mode=cfg.mode,
                dir=str(run_dir),
                config=config,
                settings=wandb.Settings(init_timeout=cfg.init_timeout_s, quiet=True),
            )
            log.info("W&B run %s (%s mode) in %s", self._wandb.id, cfg.mode, run_dir)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log scalars; `step` is the stage's own counter (None for one-off metrics such as final eval)."""
        row = {"time": time.time(), "step": step, **metrics}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self._wandb is not None:
            payload = dict(metrics)
            if step is not None:  # each stage has its own x-axis ("sft/step", "rl/step"), so stages never clash
                stage = next(iter(metrics)).split("/")[0]
                if stage not in self._stages:
                    self._wandb.define_metric(f"{stage}/*", step_metric=f"{stage}/step")
                    self._stages.add(stage)
                payload[f"{stage}/step"] = step
            self._wandb.log(payload)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Sample completions and the like: a W&B table (the same rows are in the run dir's JSONL files)."""
        if self._wandb is not None:
            import wandb

            self._wandb.log({key: wandb.Table(columns=columns, data=rows)})

    def set_summary(self, summary: dict[str, float]) -> None:
        if self._wandb is not None:
            for k, v in summary.items():
                self._wandb.summary[k] = v

    def finish(self) -> None:
        self._metrics.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
