"""Entry point for the multi-process SFT test: `torchrun --nproc_per_node 2 -m tests.training.sft_worker ...`."""
from __future__ import annotations

import argparse
from pathlib import Path

from skillexp.tracking import LoggerConfig
from skillexp.models import resolve_model_dir
from skillexp.tracking import Tracker
from skillexp.training.config import OptimConfig, SFTConfig, TrainerConfig
from skillexp.training.sft import run_sft
from tests.conftest import TINY


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--zero", type=int, required=True)
    args = ap.parse_args()
    trainer = TrainerConfig(name="test", zero_stage=args.zero, micro_batch_size=4, save_every_steps=3,
                            keep_final_checkpoint=True)
    tracker = Tracker(LoggerConfig(backend="none"), args.out.parent, {})
    run_sft(args.data, resolve_model_dir(TINY, args.cache), TINY, trainer,
            SFTConfig(max_steps=6, max_length=256, val_fraction=0.15, eval_every_steps=3,
                      optim=OptimConfig(lr=3e-3, warmup_ratio=0.1)), args.out, tracker, seed=0)
    tracker.finish()


if __name__ == "__main__":
    main()
