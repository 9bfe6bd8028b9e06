"""The Generator protocol shared by the HF and vLLM backends.

Prompts are token ids rendered once by `render_chat`, so both backends see byte-identical inputs and any
difference in output comes from the engine, not from templating.
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal, Sequence

import torch


@dataclass
class SamplingParams:
    """Decoding settings. temperature 0 means greedy; top_k -1 / top_p 1.0 disable those filters."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False  # return the sampled tokens' log-probs (GRPO needs them)
    # vLLM: prompt i of the call samples with its own seed, drawn from (seed, prompt_index + i), so that prompts
    # never share random draws and a prompt's samples depend on its place in a larger batch (GRPO's step, split
    # over ranks), not on the call it went in. None: every prompt uses `seed` (HF: always one seed per batch)
    prompt_index: int | None = None

    def prompt_seed(self, i: int) -> int | None:
        """The seed prompt i of the call samples with."""
        if self.seed is None or self.prompt_index is None:
            return self.seed
        key = f"{self.seed}-{self.prompt_index + i}".encode()
        return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little") >> 1


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: Literal["stop", "length"]
    logprobs: list[float] | None = None  # one per token in token_ids when asked for

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def checkpoint_tensors(model_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs of an HF checkpoint directory's safetensors shards, one shard in memory at a time."""
    from safetensors.torch import load_file

    shards = sorted(Path(model_dir).glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{model_dir} has no *.safetensors weights to load into the running engine; "
                                "save the model with save_pretrained(safe_serialization=True).")
    for shard in shards:
        yield from load_file(str(shard)).items()


class Generator(ABC):
    """A text generator over a fixed model. One instance is reused for a whole stage."""

    tokenizer: "object"  # a transformers tokenizer; used by callers to render prompts
    tensor_parallel_size: int = 1  # the devices (or ranks) the engine's model is split over, as the engine reports

    @abstractmethod
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """For each prompt (token ids), `params.n` completions, in prompt order."""

    @abstractmethod
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Replace the model's weights in place with HF-named tensors (GRPO: the policy after an update)."""

    def load_checkpoint(self, model_dir: Path) -> None:
        """Replace the model's weights with those of an HF checkpoint directory's safetensors."""
        self.load_weights(checkpoint_tensors(model_dir))

    def sleep(self) -> None:
        """Give the memory of the sampler back while a trainer on the same device updates (GRPO), if the engine
        can; the weights need not survive: `wake` is always followed by `load_weights`."""

    def wake(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Take the memory back after `sleep` and load `weights` (GRPO's policy after the update)."""
        self.load_weights(weights)

    def close(self) -> None:
        """Release engines, processes and memory."""


def render_chat(tokenizer, conversations: Sequence[list[dict[str, str]]]) -> list[list[int]]:
    """Token ids of each conversation with the model's chat template and a generation prompt appended."""
    out = []
    for messages in conversations:
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        out.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return out
