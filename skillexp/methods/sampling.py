"""Sampling from the base model for the data-building methods (on the generation backend: vLLM where present).

`base_generator` remembers the base model's samples in the stage cache (generation/cached.py), so the methods of
a sweep that draw the same samples (SkillFactory and its ablations, STAT-Sel and STAT-Syn) draw them once.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from skillexp.config import RunConfig
from skillexp.generation import build_generator
from skillexp.generation.base import Completion, Generator, render_chat
from skillexp.generation.cached import CachedGenerator
from skillexp.generation.config import SamplingConfig
from skillexp.models import load_tokenizer
from skillexp.stage_cache import digest


def base_generator(run: RunConfig, model_dir: Path) -> Generator:
    """The base model's generator, behind the shared sample cache when the stage cache is on (the engine starts
    only when a prompt is not in it)."""
    def start() -> Generator:
        return build_generator(model_dir, run.model, run.generation, seed=run.seed)

    if not run.paths.stage_cache_dir:
        return start()
    identity = {"model": asdict(run.model),
                "generation": {k: v for k, v in asdict(run.generation).items() if k != "show_progress"}}
    path = Path(run.paths.stage_cache_dir) / "samples" / f"{run.model.name}-{digest(identity)}.sqlite"
    return CachedGenerator(start, load_tokenizer(model_dir, run.model), path)


def sample(gen: Generator, conversations: list[list[dict]], n: int, s: SamplingConfig, seed: int,
           max_tokens: int | None = None) -> list[list[Completion]]:
    return gen.generate(render_chat(gen.tokenizer, conversations),
                        s.params(n, seed, max_tokens=max_tokens or s.max_tokens))
