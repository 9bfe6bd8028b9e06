"""What a `generation=` config says: which engine samples, and its engine-level settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
