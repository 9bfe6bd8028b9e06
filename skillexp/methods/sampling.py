"""Sampling from the base model for the data-building methods (on the generation backend: vLLM where present)."""
from __future__ import annotations

from skillexp.generation.base import Completion, Generator, SamplingParams, render_chat
from skillexp.methods.config import MethodSampling


def sample(gen: Generator, conversations: list[list[dict]], n: int, s: MethodSampling, seed: int,
           max_tokens: int | None = None) -> list[list[Completion]]:
    return gen.generate(render_chat(gen.tokenizer, conversations), SamplingParams(
        n=n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, repetition_penalty=s.repetition_penalty,
        max_tokens=max_tokens or s.max_tokens, seed=seed))
