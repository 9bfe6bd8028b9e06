"""Sampling from the base model for the data-building methods (on the generation backend: vLLM where present)."""
from __future__ import annotations

from skillexp.generation.base import Completion, Generator, render_chat
from skillexp.generation.config import SamplingConfig


def sample(gen: Generator, conversations: list[list[dict]], n: int, s: SamplingConfig, seed: int,
           max_tokens: int | None = None) -> list[list[Completion]]:
    return gen.generate(render_chat(gen.tokenizer, conversations),
                        s.params(n, seed, max_tokens=max_tokens or s.max_tokens))
