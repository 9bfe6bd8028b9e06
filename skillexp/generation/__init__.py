"""Generation backends behind one interface; `build_generator` picks one from `generation.backend`."""
from __future__ import annotations

from pathlib import Path

from skillexp.generation.base import Completion, Generator, SamplingParams, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.models.config import ModelConfig

__all__ = ["Completion", "Generator", "SamplingParams", "build_generator", "render_chat"]


def build_generator(model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int = 0) -> Generator:
    from skillexp.timing import phase

    with phase("engine_start"):
        if cfg.backend == "vllm":  # on a CPU-only machine, an engine kept from an earlier stage or run
            from skillexp.generation.pool import acquire

            return acquire(model_dir, model_cfg, cfg, seed)
        from skillexp.generation.hf import HFGenerator

        return HFGenerator(model_dir, model_cfg, cfg, seed)
