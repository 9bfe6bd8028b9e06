"""One small logging interface: every scalar goes to `metrics.jsonl`, and to W&B when it is enabled.

W&B runs offline unless configured otherwise, so a machine without network never waits on it; the JSONL file is
the source of truth that reports read, whatever the W&B mode. Only rank 0 of a multi-process stage logs. The W&B run
id is kept in the run dir, so a resumed run, or training ranks the pipeline hands the run to, continue the same run.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterator, Literal

from skillexp.utils.io import atomic_write_text, rewind_jsonl
from skillexp.utils.schema import POSITIVE

log = logging.getLogger(__name__)


@dataclass
class LoggerConfig:
    """What a `logger=` config says: where metrics go besides metrics.jsonl (W&B, offline by default)."""

    backend: Literal["wandb", "none"] = "wandb"
    # offline by default: online W&B without network blocks for init_timeout (90 s) before failing
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "skillexp"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    job_type: str = "study"
    init_timeout_s: Annotated[float, POSITIVE] = 60.0


class Tracker:
    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: dict[str, Any]):
        self.run_dir, self.cfg, self.config = run_dir, cfg, config
        self.active = int(os.environ.get("RANK", "0")) == 0
        self._metrics = None
        self._wandb = None
        self._stages: set[str] = set()
        if self.active:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._metrics = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
            self._open_wandb()

    def _open_wandb(self) -> None:
        cfg = self.cfg
        if cfg.backend != "wandb" or cfg.mode == "disabled":
            return
        import wandb

        id_file = self.run_dir / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        atomic_write_text(id_file, run_id + "\n")
        os.environ.setdefault("WANDB_DIR", str(self.run_dir))
        # W&B advertises its Weave tracing at every init once `openai` (our teacher client) is imported
        os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
        self._wandb = wandb.init(
            id=run_id,
            resume="allow",
            project=cfg.project,
            entity=cfg.entity,
            group=cfg.group,
            name=cfg.name,
            tags=list(cfg.tags) or None,
            job_type=cfg.job_type,
            mode=cfg.mode,
            dir=str(self.run_dir),
            config=self.config,
            # silent: the line logged below says where the run is
            settings=wandb.Settings(init_timeout=cfg.init_timeout_s, quiet=True, silent=True),
        )
        self._stages.clear()
        log.info("W&B run %s (%s mode) in %s", run_id, cfg.mode, self.run_dir)

    @contextmanager
    def handed_off(self) -> Iterator[None]:
        """Let another process (the ranks of a launched stage) log to this run meanwhile: W&B allows one writer,
        and metrics.jsonl is opened again afterwards (a rank that rewound it replaced the file)."""
        if self._metrics is not None:
            self._metrics.close()
        wandb_on = self._wandb is not None
        if wandb_on:
            self._wandb.finish()
            self._wandb = None
        try:
            yield
        finally:
            if self._metrics is not None:
                self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
            if wandb_on:
                self._open_wandb()

    def rewind(self, step: int, *prefixes: str) -> None:
        """A stage that starts again from its checkpoint at `step` (0: from scratch) drops the rows its earlier,
        killed attempt logged past that point under its metric `prefixes` ("sft"; "rl" and "rl_val"), so that
        metrics.jsonl holds the rows of the attempt that produced its weights. W&B's history is append-only: there
        the earlier attempt's points stay."""
        if self._metrics is None:
            return
        self._metrics.close()
        mine = tuple(f"{p}/" for p in prefixes)

        def keep(row: dict) -> bool:
            if not any(k.startswith(mine) for k in row if k not in ("time", "step")):
                return True
            return step > 0 and row.get("step") is not None and row["step"] <= step

        dropped = rewind_jsonl(self.run_dir / "metrics.jsonl", keep)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        if dropped:
            log.info("metrics.jsonl: dropped %d %s rows an earlier attempt logged after step %d", dropped,
                     "/".join(prefixes), step)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log scalars; `step` is the stage's own counter (None for one-off metrics such as final eval)."""
        if self._metrics is None:
            return
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

    def log_image(self, key: str, path: Path) -> None:
        """A figure the stage saved in the run dir (the PNG stays the source of truth), shown in W&B."""
        if self._wandb is not None:
            import wandb

            self._wandb.log({key: wandb.Image(str(path))})

    def update_config(self, values: dict[str, Any]) -> None:
        """Settings a stage learns only when it runs (e.g. the world size it trained with), added to the run's
        config so that nobody has to guess whether a setting took."""
        self.config.update(values)
        if self._wandb is not None:
            self._wandb.config.update(values, allow_val_change=True)

    def set_summary(self, summary: dict[str, float]) -> None:
        if self._wandb is not None:
            for k, v in summary.items():
                self._wandb.summary[k] = v

    def finish(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
