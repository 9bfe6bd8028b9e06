"""Hugging Face `generate` backend: batched, left-padded, KV-cached. Runs wherever transformers runs.

It follows vLLM's semantics so the two backends are interchangeable:
- decoding is defined by our SamplingParams alone: the model's `generation_config.json` sampling defaults (Qwen's
  top_k=20, repetition_penalty=1.05, ...) are dropped, as vLLM ignores them when it is given explicit params;
- token_ids end at EOS (kept) or at the token that completes a stop string; text excludes the stop string;
- log-probs are vLLM's default `raw_logprobs`: log-softmax of the model's logits before temperature, penalties and
  top-k/top-p, i.e. the policy's own distribution that a trainer recomputes. They come from one teacher-forced
  forward pass over the finished sequences: asking `generate` for per-step scores would hold
  batch x steps x vocab floats (gigabytes for a 49k vocabulary).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Sequence

import torch
from tqdm.auto import tqdm

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.generation.config import GenerationConfig
from skillexp.models import load_causal_lm, load_tokenizer
from skillexp.models.config import ModelConfig


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@torch.no_grad()
def sequence_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, start: int,
                      chunk: int = 8) -> torch.Tensor:
    """log p(token_t | tokens_<t) for positions >= `start` under the raw model, in float32, `chunk` rows at a time."""
    out = []
    keep = input_ids.shape[1] - start + 1  # logits of the positions that predict tokens start.. (and one spare)
    for i in range(0, input_ids.shape[0], chunk):
        ids, mask = input_ids[i:i + chunk], attention_mask[i:i + chunk]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens only
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        out.append(logp.gather(-1, ids[:, start:, None]).squeeze(-1))
    return torch.cat(out)


class HFGenerator(Generator):
    """`generate` over `gen_cfg.batch_size` prompts at a time, each expanded to `params.n` samples."""

    def __init__(self, model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int = 0,
                 model: torch.nn.Module | None = None):
        """`model`: generate with this (training) model itself instead of loading one; GRPO's HF rollouts do, so
        no weights are ever copied between policy and sampler."""
        from transformers import GenerationConfig as HFGenerationConfig

        self.cfg = cfg
        self._seeds = random.Random(seed)  # per-call seeds for calls without one: a fixed sequence per generator
        self.tokenizer = load_tokenizer(model_dir, model_cfg)
        if model is None:
            self.device = resolve_device(cfg.device)
            self.model = load_causal_lm(model_dir, model_cfg, self.device)
        else:
            self.device, self.model = str(next(model.parameters()).device), model
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = sorted({e for e in eos if e is not None} | {self.tokenizer.eos_token_id})
        self.model.generation_config = HFGenerationConfig(
            bos_token_id=self.model.generation_config.bos_token_id, eos_token_id=self.eos_ids,
            pad_token_id=self.tokenizer.pad_token_id)

    def _pad(self, prompts: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        return ids, mask

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _finish(self, tokens: list[int], params: SamplingParams) -> tuple[list[int], str, str]:
        """(token_ids, text, finish_reason) of one raw continuation, cut as vLLM cuts it."""
        reason = "length"
        eos = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        if eos is not None:
            tokens, reason = tokens[: eos + 1], "stop"
        text = self._decode(tokens)
        hits = [text.find(s) for s in params.stop if s and s in text]
        if not hits:
            return tokens, text, reason
        cut = min(hits)
        # the shortest prefix of tokens whose text already holds a stop string (monotone in length: bisect)
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s and s in self._decode(tokens[:mid]) for s in params.stop):
                hi = mid
            else:
                lo = mid + 1
        return tokens[:lo], text[:cut], "stop"

    def _hf_config(self, params: SamplingParams):
        from transformers import GenerationConfig as HFGenerationConfig

        sampling = {} if params.temperature == 0 else {  # top_k 0, not None: HF's unset top_k means 50
            "do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": max(params.top_k, 0)}
        return HFGenerationConfig(
            max_new_tokens=params.max_tokens, num_return_sequences=params.n, **sampling,
            repetition_penalty=params.repetition_penalty, stop_strings=[s for s in params.stop if s] or None,
            eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.model.generation_config.bos_token_id)

    @torch.no_grad()
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        params = dict(self.model.named_parameters())
        for name, tensor in weights:
            if params[name].data_ptr() != tensor.data_ptr():  # a shared training model needs no copy
                params[name].copy_(tensor)

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        training = self.model.training  # a shared training model: sample in eval mode, then hand it back
        self.model.eval()
        try:
            return self._generate(prompts, params)
        finally:
            self.model.train(training)

    def _generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if params.temperature == 0 and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 would return n identical samples.")
        seed = params.seed if params.seed is not None else self._seeds.randrange(2**31)
        config = self._hf_config(params)
        extra = {"tokenizer": self.tokenizer} if params.stop else {}
        rng_devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        results: list[list[Completion]] = []
        bs = self.cfg.batch_size
        for b in tqdm(range(0, len(prompts), bs), desc="generate (hf)", disable=not self.cfg.show_progress,
                      leave=False):
            ids, mask = self._pad(prompts[b:b + bs])
            with torch.random.fork_rng(devices=rng_devices):  # reproducible without touching the caller's RNG
                torch.manual_seed(seed + b)
                seqs = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config, **extra)
            width = ids.shape[1]
            finished = [self._finish(row[width:].tolist(), params) for row in seqs]
            logprobs = None
            if params.logprobs:
                full_mask = torch.cat([mask.repeat_interleave(params.n, 0), torch.ones_like(seqs[:, width:])], 1)
                logprobs = sequence_logprobs(self.model, seqs, full_mask, width)
            for r, (tokens, text, reason) in enumerate(finished):
                if r % params.n == 0:
                    results.append([])
                lp = logprobs[r, : len(tokens)].tolist() if logprobs is not None else None
                results[-1].append(Completion(text=text, token_ids=tokens, finish_reason=reason, logprobs=lp))
        return results

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
