"""Sampling from the base model for the data-building methods (on the generation backend: vLLM where present).

`base_generator` remembers the base model's samples in the stage cache (generation/cached.py), so the methods of
a sweep that draw the same samples (SkillFactory and its ablations, STAT-Sel and STAT-Syn) draw them once.
"""
from __future__ import annotations

from pathlib import Path

from skillexp.generation import build_generator
from skillexp.generation.base import Completion, Generator, render_chat
from skillexp.generation.cached import CachedGenerator
from skillexp.generation.config import SamplingConfig
from skillexp.methods.config import SFTDataInputs
from skillexp.models import load_tokenizer
from skillexp.runtime import Runtime
from skillexp.stage_cache import digest, key_data


def base_generator(inputs: SFTDataInputs, rt: Runtime) -> Generator:
    """The base model's generator, behind the shared sample cache when there is one (the engine starts only when
    a prompt is not in it). Any record with `base`, `model`, `generation` and `seed` will do (the eval's subset
    stage passes its own)."""
    model_dir = Path(inputs.base.path)

    def start() -> Generator:
        return build_generator(model_dir, inputs.model, inputs.generation, seed=inputs.seed)

    if rt.sample_cache is None:
        return start()
    identity = {"model": key_data(inputs.model), "generation": key_data(inputs.generation)}
    path = rt.sample_cache / f"{inputs.model.name}-{digest(identity)}.sqlite"
    return CachedGenerator(start, load_tokenizer(model_dir, inputs.model), path)


def sample(gen: Generator, conversations: list[list[dict]], n: int, s: SamplingConfig, seed: int,
           max_tokens: int | None = None) -> list[list[Completion]]:
    return gen.generate(render_chat(gen.tokenizer, conversations),
                        s.params(n, seed, max_tokens=max_tokens or s.max_tokens))
