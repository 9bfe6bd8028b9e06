"""vLLM engines kept across stages and runs of one process, on CPU-only machines.

A run builds an engine for its SFT-data samples, another for the pre-RL eval, GRPO and the final eval, and a multirun
in one process (the basic launcher, `make run`) does that again for every run: 5-10 s a start on 2 cores, and
memory the torn-down engines do not all give back. On a machine without a GPU the engine's memory is ordinary RAM
that the trainers do not compete for, so a closed engine goes back to this pool instead of shutting down, and the
next stage that asks for an engine of the same kind gets it, with the weights it asked for streamed in (the same
path GRPO's weight syncs take, which drops the prefix cache).

What a reused engine gives is what a new one would give: every request a stage sends carries its own seed, and
`acquire` reseeds the process's RNGs as vLLM's constructor does (`LLM(seed=...)`), so the code after it draws the
same numbers either way. The pool holds at most one idle engine (a different kind closes it first).

The GPU-only switch is `pools()`: with CUDA (whose memory SFT and GRPO need back), or under torchrun (each rank's
engine belongs to that launch), every engine is built and shut down as before.
"""
from __future__ import annotations

import atexit
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import torch

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.generation.config import GenerationConfig
from skillexp.generation.vllm import BEFORE_SHUTDOWN, VLLMGenerator
from skillexp.models import load_tokenizer
from skillexp.models.config import ModelConfig

_IDLE: list[tuple[str, "Engine"]] = []  # (kind, engine): at most one
# what an engine is built from besides the weights: a reused one must match in all of it
_ENGINE_FIELDS = ("dtype", "max_model_len", "trust_remote_code", "revision")
_IGNORED_CONFIG = ("_name_or_path", "torch_dtype", "dtype", "transformers_version")


def pools() -> bool:
    """Keep engines across stages? Only in a CPU-only, single-process job."""
    import torch.distributed as dist

    multi = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    return not torch.cuda.is_available() and not multi


def _kind(model_dir: Path, model_cfg: ModelConfig, cfg: GenerationConfig) -> str:
    try:
        arch = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        arch = {"dir": str(model_dir)}  # unreadable: only the same directory matches
    arch = {k: v for k, v in arch.items() if k not in _IGNORED_CONFIG}
    engine = {k: getattr(model_cfg, k) for k in _ENGINE_FIELDS}
    generation = {k: v for k, v in asdict(cfg).items() if k not in ("show_progress", "batch_size", "device")}
    return json.dumps({"arch": arch, "model": engine, "generation": generation}, sort_keys=True, default=str)


class Engine(Generator):
    """A vLLM engine lent to one holder at a time: `close()` hands it back to the pool."""

    def __init__(self, gen: Generator, kind: str, model_dir: Path):
        self.gen, self.kind, self.model_dir = gen, kind, model_dir  # model_dir: the checkpoint it holds, or None
        self.tensor_parallel_size = gen.tensor_parallel_size

    @property
    def tokenizer(self):
        return self.gen.tokenizer

    @tokenizer.setter
    def tokenizer(self, value) -> None:
        self.gen.tokenizer = value

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        return self.gen.generate(prompts, params)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.model_dir = None  # streamed tensors: no checkpoint on disk holds them
        self.gen.load_weights(weights)

    def load_checkpoint(self, model_dir: Path) -> None:
        super().load_checkpoint(model_dir)
        self.model_dir = Path(model_dir).resolve()

    def sleep(self) -> None:
        self.gen.sleep()

    def wake(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        self.model_dir = None
        self.gen.wake(weights)

    def close(self) -> None:
        if self.gen is None:
            return
        while _IDLE:  # at most one idle engine
            _IDLE.pop()[1].shutdown()
        _IDLE.append((self.kind, Engine(self.gen, self.kind, self.model_dir)))
        self.gen = None  # this handle is done; the pool holds a new one

    def shutdown(self) -> None:
        gen, self.gen = self.gen, None
        if gen is not None:
            gen.close()


def acquire(model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int) -> Generator:
    """A vLLM engine holding `model_dir`'s weights: an idle one of the same kind if the pool has it, else a new one
    (and where engines are not pooled, a plain `VLLMGenerator`)."""
    model_dir = Path(model_dir).resolve()
    if not pools():
        return VLLMGenerator(model_dir, model_cfg, cfg, seed)
    kind = _kind(model_dir, model_cfg, cfg)
    for i, (k, idle) in enumerate(_IDLE):
        if k == kind:
            del _IDLE[i]
            if idle.model_dir != model_dir:
                idle.load_checkpoint(model_dir)
            idle.tokenizer = load_tokenizer(model_dir, model_cfg)  # its chat template may differ
            idle.gen.cfg = cfg  # engine-level settings match; the per-call ones (progress bars) are this holder's
            _reseed(seed)
            return idle
    while _IDLE:  # another kind: free its memory before building
        _IDLE.pop()[1].shutdown()
    return Engine(VLLMGenerator(model_dir, model_cfg, cfg, seed), kind, model_dir)


def _reseed(seed: int) -> None:
    """What `vllm.LLM(seed=seed)` does to the process's RNGs when it starts (vLLM's `seed_everything`)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@atexit.register
def close_all() -> None:
    """Shut every idle engine down (end of the process, or a test that needs the memory)."""
    while _IDLE:
        _IDLE.pop()[1].shutdown()


BEFORE_SHUTDOWN.append(close_all)  # any engine's shutdown would break the idle one
