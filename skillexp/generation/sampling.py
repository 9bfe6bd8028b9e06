"""Sampling the base model for the stages that build on its answers (the data methods, the eval's difficult
subsets), on the generation backend: vLLM where present.

`base_generator` remembers the base model's samples in the stage cache (`cached.py`), so the stages of a sweep that
draw the same samples (SkillFactory and its ablations, STAT-Sel and STAT-Syn) draw them once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from skillexp.generation import build_generator
from skillexp.generation.base import Completion, Generator, render_chat
from skillexp.generation.cached import CachedGenerator
from skillexp.generation.config import GenerationConfig, SamplingConfig
from skillexp.models import load_tokenizer
from skillexp.models.config import ModelConfig
from skillexp.stage_cache import Artifact, digest, key_data


class BaseSampling(Protocol):
    """What a record that samples the base model holds (the sft_data and subset records do)."""

    base: Artifact
    model: ModelConfig
    generation: GenerationConfig
    seed: int


def base_generator(inputs: BaseSampling, sample_cache: Path | None) -> Generator:
    """The generator of the model the record samples (`inputs.base`: the base model, or the SFT model a continual
    method profiles), behind the shared sample cache when there is one (the engine starts only when a prompt is not
    in it); the cache is the weights' own: its file is named by their key."""
    model_dir = Path(inputs.base.path)

    def start() -> Generator:
        return build_generator(model_dir, inputs.model, inputs.generation, seed=inputs.seed)

    if sample_cache is None:
        return start()
    identity = {"model": key_data(inputs.model), "generation": key_data(inputs.generation),
                "weights": inputs.base.key}
    path = sample_cache / f"{inputs.model.name}-{digest(identity)}.sqlite"
    return CachedGenerator(start, load_tokenizer(model_dir, inputs.model), path)


def sample(gen: Generator, conversations: list[list[dict]], n: int, s: SamplingConfig, seed: int,
           max_tokens: int | None = None) -> list[list[Completion]]:
    return gen.generate(render_chat(gen.tokenizer, conversations),
                        s.params(n, seed, max_tokens=max_tokens or s.max_tokens))
