"""The pipeline's shared engine: one vLLM start for pre-RL eval, GRPO and final eval, checkpoints swapped in."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skillexp.generation import SamplingParams, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.generation.hf import HFGenerator
from skillexp.generation.base import checkpoint_tensors
from skillexp.generation.shared import SharedEngine
from tests.conftest import TINY

QUESTIONS = [f"What is {a} * {b}? <answer>" for a, b in [(3, 4), (12, 9), (7, 70), (250, 17)]]
GREEDY = SamplingParams(temperature=0.0, max_tokens=24)


def perturbed_copy(src: Path, dst: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.save_pretrained(str(dst))
    AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(dst))
    return dst


def greedy_ids(gen, prompts) -> list[list[int]]:
    return [g[0].token_ids for g in gen.generate(prompts, GREEDY)]


def hf_greedy(model_dir: Path, prompts) -> list[list[int]]:
    gen = HFGenerator(model_dir, TINY, GenerationConfig(backend="hf", show_progress=False))
    try:
        return greedy_ids(gen, prompts)
    finally:
        gen.close()


@pytest.mark.vllm
def test_one_engine_follows_each_checkpoint_it_is_given(tiny_model_dir: Path, tmp_path: Path) -> None:
    other = perturbed_copy(tiny_model_dir, tmp_path / "other")
    spec = (TINY, GenerationConfig(backend="vllm", show_progress=False), 0)
    with SharedEngine() as engine:
        gen = engine.load(tiny_model_dir, *spec)
        prompts = render_chat(gen.tokenizer, [[{"role": "user", "content": q}] for q in QUESTIONS])
        base = greedy_ids(gen, prompts)
        swapped = greedy_ids(engine.load(other, *spec), prompts)  # same prompts: a stale prefix cache would show here
        assert swapped != base
        assert swapped == hf_greedy(other, prompts)
        assert greedy_ids(engine.load(tiny_model_dir, *spec), prompts) == base
        assert (engine.starts, engine.reloads) == (1, 2)
        engine.load(tiny_model_dir, *spec)  # already held: nothing to do
        assert engine.reloads == 2
        engine.modified()  # a holder (GRPO) changed the weights in place: the next load reads the checkpoint
        engine.load(tiny_model_dir, *spec)
        assert engine.reloads == 3


def test_a_stage_whose_record_asks_for_other_engine_settings_gets_an_engine_built_from_them(
        tiny_model_dir: Path) -> None:
    """The engine follows each stage's record, not the run's config: other settings (here the seed) close the
    running engine and start one with the record's; the same settings keep it."""
    hf = GenerationConfig(backend="hf", show_progress=False)
    with SharedEngine() as engine:
        first = engine.load(tiny_model_dir, TINY, hf, 0)
        assert engine.load(tiny_model_dir, TINY, GenerationConfig(backend="hf", show_progress=False), 0) is first
        other = engine.load(tiny_model_dir, TINY, hf, 1)
        assert other is not first and (engine.starts, engine.reloads) == (2, 0)


def test_checkpoint_tensors_name_the_fix_when_there_are_no_safetensors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="safe_serialization"):
        next(checkpoint_tensors(tmp_path))


@pytest.mark.vllm
def test_a_closed_engine_is_lent_again_with_the_weights_asked_for(tiny_model_dir: Path, tmp_path: Path) -> None:
    """On a CPU-only machine a closed vLLM engine goes back to the pool (generation/pool.py): the next stage or run
    that asks for one of the same kind gets it, with its checkpoint's weights streamed in and the process's RNGs
    reseeded as a new engine's start would; another kind shuts the idle one down first."""
    from dataclasses import replace

    from skillexp.generation import build_generator, pool

    pool.close_all()
    other = perturbed_copy(tiny_model_dir, tmp_path / "other")
    cfg = GenerationConfig(backend="vllm", show_progress=False)
    sampled = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=5)
    first = build_generator(tiny_model_dir, TINY, cfg, seed=3)
    after_start = torch.rand(4)  # the RNG state a new engine leaves
    prompts = render_chat(first.tokenizer, [[{"role": "user", "content": q}] for q in QUESTIONS])
    base, base_samples = greedy_ids(first, prompts), first.generate(prompts, sampled)
    engine = first.gen
    first.close()
    torch.manual_seed(1234)  # whatever ran in between
    second = build_generator(other, TINY, cfg, seed=3)
    assert second.gen is engine  # reused, not started again
    assert torch.equal(torch.rand(4), after_start)
    assert greedy_ids(second, prompts) == hf_greedy(other, prompts) != base
    second.close()
    third = build_generator(tiny_model_dir, TINY, cfg, seed=3)
    assert third.gen is engine and greedy_ids(third, prompts) == base
    assert [[c.token_ids for c in o] for o in third.generate(prompts, sampled)] == \
        [[c.token_ids for c in o] for o in base_samples]
    third.close()
    fourth = build_generator(tiny_model_dir, replace(TINY, max_model_len=512), cfg, seed=3)
    assert fourth.gen is not engine and engine.llm is None  # another kind: the idle engine was shut down
    idle = fourth.gen
    fourth.close()
    # an engine outside the pool that shuts down tears down the groups the idle one runs on: it goes with it
    from skillexp.generation.vllm import VLLMGenerator

    VLLMGenerator(tiny_model_dir, TINY, cfg, seed=3).close()
    assert idle.llm is None and not pool._IDLE
    fifth = build_generator(tiny_model_dir, TINY, cfg, seed=3)
    assert greedy_ids(fifth, prompts) == base
    fifth.close()
    pool.close_all()
