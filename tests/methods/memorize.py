"""Fine-tune the tiny model until it has memorised a few chat rows: a student that answers chosen questions in a
chosen way (right, or wrong in a chosen way), which the data-building methods need and a random model is not."""
from __future__ import annotations

import json
from pathlib import Path

from skillexp.tracking import LoggerConfig
from skillexp.tracking import Tracker
from skillexp.training.config import OptimConfig, SFTConfig, TrainerConfig
from skillexp.training.sft import run_sft
from tests.conftest import TINY


def memorize(rows: list[dict], tiny_model_dir: Path, root: Path, max_steps: int = 300,
             max_length: int = 512) -> Path:
    """The exported model after `max_steps` steps on `rows` (a high, annealed lr: it memorises reliably)."""
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tracker = Tracker(LoggerConfig(backend="none"), root, {})
    trainer = TrainerConfig(name="memorize", micro_batch_size=8, save_every_steps=10_000)
    try:
        return run_sft(root / "data.jsonl", tiny_model_dir, TINY, trainer,
                       SFTConfig(max_steps=max_steps, max_length=max_length, val_fraction=0.0,
                                 optim=OptimConfig(lr=5e-3, warmup_ratio=0.05, schedule="cosine")),
                       root / "sft", tracker,
                       seed=0)
    finally:
        tracker.finish()
