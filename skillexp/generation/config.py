"""What a `generation=` config says (which engine samples, and its engine-level settings), and the `sampling:`
block that every stage that samples (method, eval, rl) carries."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from skillexp.generation.base import SamplingParams
from skillexp.utils.schema import AT_LEAST_1, NON_NEGATIVE, POSITIVE, UNKEYED, Range


@dataclass
class SamplingConfig:
    """A stage's decoding settings, engine-independent. Defaults: Qwen2.5's generation config, which SkillFactory
    (App. B.3) samples with; the stage supplies n and the seed."""

    temperature: Annotated[float, NON_NEGATIVE] = 0.7
    top_p: Annotated[float, Range(0, 1, open_low=True)] = 0.8
    top_k: Annotated[int, Range(-1)] = 20
    repetition_penalty: Annotated[float, POSITIVE] = 1.0
    max_tokens: Annotated[int, AT_LEAST_1] = 512
    stop: list[str] = field(default_factory=list)

    def params(self, n: int, seed: int | None, **overrides: Any) -> SamplingParams:
        base = SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              repetition_penalty=self.repetition_penalty, max_tokens=self.max_tokens,
                              stop=list(self.stop), seed=seed)
        return replace(base, **overrides)


@dataclass
class GenerationConfig:
    backend: Literal["hf", "vllm"] = "hf"
    device: str = "auto"  # hf backend: "auto" (cuda if present, else cpu), "cpu", "cuda", "cuda:1"
    batch_size: Annotated[int, AT_LEAST_1] = 32  # hf backend: prompts per generate() call (each expanded to n samples)
    # vllm backend
    gpu_memory_utilization: Annotated[float, Range(0, 1, open_low=True)] = 0.85
    tensor_parallel_size: Annotated[int, AT_LEAST_1] = 1
    max_num_seqs: Annotated[int, AT_LEAST_1] = 64
    enforce_eager: bool = True  # no CUDA graphs / torch.compile: faster start, fine for small runs
    # GRPO on a GPU: the engine sleeps during each update (KV cache freed, weights dropped) and wakes with the new
    # weights, so the trainer has the memory vLLM's gpu_memory_utilization holds; no effect on CPUs (no sleep mode)
    sleep: Annotated[bool, UNKEYED] = True
    # sets VLLM_CPU_KVCACHE_SPACE (GiB, allocated up front) on CPU-only machines
    cpu_kv_cache_gib: Annotated[int, AT_LEAST_1] = 2
    # KV-cache block size (tokens) on CPU-only machines; vLLM's CPU default is 128. Prefix caching shares only
    # whole blocks, so at 128 the n samples of a prompt shorter than 128 tokens each prefill it again; at 32 they
    # share all but its last partial block (4 samples of 52-token prompts: prefill 2.2x cheaper). A multiple of 32
    cpu_block_size: Annotated[int, Range(32)] = 32
    show_progress: Annotated[bool, UNKEYED] = True  # tqdm bars over generate() calls (both backends)

    def __post_init__(self) -> None:
        if self.cpu_block_size % 32:
            raise ValueError(f"generation.cpu_block_size={self.cpu_block_size} is not a multiple of 32, which vLLM's "
                             f"CPU attention needs: use {max(32, self.cpu_block_size // 32 * 32)}.")

    def engines(self, per_node: int, world_size: int) -> int:
        """How many vLLM engines `world_size` training ranks (`per_node` on each node) form when each engine spans
        `tensor_parallel_size` consecutive ranks; an engine never spans two nodes (tensor parallelism exchanges
        activations at every layer)."""
        tp = self.tensor_parallel_size
        if per_node % tp or world_size % tp:
            raise ValueError(f"generation.tensor_parallel_size={tp} does not split {per_node} ranks per node into "
                             "whole rollout engines: make trainer.num_processes (ranks per node) a multiple of it.")
        return world_size // tp

    def check_model(self, hf_config: dict[str, Any]) -> None:
        """vLLM's rule for splitting a model (its config.json) over `tensor_parallel_size` GPUs, checked before
        anything loads: every GPU gets as many attention heads, and the key-value heads split evenly or, when
        there are fewer of them than GPUs, are replicated evenly."""
        tp, heads = self.tensor_parallel_size, hf_config.get("num_attention_heads")
        if self.backend != "vllm" or tp == 1 or not heads:
            return
        kv = hf_config.get("num_key_value_heads") or heads

        def splits(k: int) -> bool:
            return heads % k == 0 and (kv % k == 0 if kv >= k else k % kv == 0)

        if not splits(tp):
            sizes = ", ".join(str(k) for k in range(1, 9) if splits(k))
            raise ValueError(f"generation.tensor_parallel_size={tp} does not split the model's {heads} attention "
                             f"heads ({kv} key-value heads) evenly over the GPUs, as vLLM needs; sizes that do: "
                             f"{sizes}.")
