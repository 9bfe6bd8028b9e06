"""What a `generation=` config says (which engine samples, and its engine-level settings), and the `sampling:`
block that every stage that samples (method, eval, rl) carries."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from skillexp.generation.base import SamplingParams


@dataclass
class SamplingConfig:
    """A stage's decoding settings, engine-independent. Defaults: Qwen2.5's generation config, which SkillFactory
    (App. B.3) samples with; the stage supplies n and the seed."""

    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    repetition_penalty: float = 1.0
    max_tokens: int = 512
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
    batch_size: int = 32  # hf backend: prompts per generate() call (each expanded to n samples)
    # vllm backend
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    max_num_seqs: int = 64
    enforce_eager: bool = True  # no CUDA graphs / torch.compile: faster start, fine for small runs
    cpu_kv_cache_gib: int = 2  # sets VLLM_CPU_KVCACHE_SPACE (GiB, allocated up front) on CPU-only machines
    show_progress: bool = True  # tqdm bars over generate() calls (both backends)
