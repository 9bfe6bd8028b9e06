"""Hugging Face `generate` backend: batched, left-padded, KV-cached. Runs wherever transformers runs.

Log-probs follow vLLM's default semantics (the raw model distribution, before temperature and top-k/top-p),
computed by one teacher-forced forward pass over the finished sequences: asking `generate` for per-step logits
would hold batch x steps x vocab floats (gigabytes for a 49k vocabulary).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

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
    """log p(token_t | tokens_<t) for positions >= `start`, in float32, `chunk` rows at a time."""
    out = []
    for i in range(0, input_ids.shape[0], chunk):
        ids, mask = input_ids[i:i + chunk], attention_mask[i:i + chunk]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens only
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, start - 1:-1].float()
        out.append(torch.log_softmax(logits, -1).gather(-1, ids[:, start:, None]).squeeze(-1))
    return torch.cat(out)


class HFGenerator(Generator):
    def __init__(self, model_dir: Path | str, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed
        self.device = resolve_device(cfg.device)
        self.tokenizer = load_tokenizer(model_dir, model_cfg)
        self.model = load_causal_lm(model_dir, model_cfg, self.device)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}

    def _pad(self, prompts: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        return ids, mask

    def _finish(self, tokens: list[int], params: SamplingParams) -> tuple[list[int], str, str]:
        """Cut at EOS (kept in token_ids, as vLLM does) or at the first stop string (text cut before it)."""
        reason = "length"
        for i, t in enumerate(tokens):
            if t in self.eos_ids:
                tokens, reason = tokens[: i + 1], "stop"
                break
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        hits = [(text.find(s), s) for s in params.stop if s and s in text]
        if hits:
            cut = min(hits)[0]
            text, reason = text[:cut], "stop"
            # keep the tokens up to the one that completed the stop string
            for j in range(1, len(tokens) + 1):
                if len(self.tokenizer.decode(tokens[:j], skip_special_tokens=True)) > cut:
                    tokens = tokens[:j]
                    break
        return tokens, text, reason

    @torch.no_grad()
    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        greedy = params.temperature == 0
        if greedy and params.n > 1:
            raise ValueError("greedy decoding (temperature 0) with n > 1 would return n identical samples.")
        kwargs = dict(
            max_new_tokens=params.max_tokens, do_sample=not greedy, num_return_sequences=params.n,
            repetition_penalty=params.repetition_penalty, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids))
        if not greedy:
            kwargs.update(temperature=params.temperature, top_p=params.top_p,
                          top_k=params.top_k if params.top_k > 0 else 0)
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        results: list[list[Completion]] = []
        bs = self.cfg.batch_size
        batches = range(0, len(prompts), bs)
        for b in tqdm(batches, desc="generate (hf)", disable=not self.cfg.show_progress, leave=False):
            if params.seed is not None:
                torch.manual_seed(params.seed + b)
            ids, mask = self._pad(prompts[b:b + bs])
            seqs = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            width = ids.shape[1]
            finished = [self._finish(row[width:].tolist(), params) for row in seqs]
            logprobs = None
            if params.logprobs:
                full_mask = torch.cat([mask.repeat_interleave(params.n, 0),
                                       torch.ones_like(seqs[:, width:])], 1)
                logprobs = sequence_logprobs(self.model, seqs, full_mask, width)
            for i in range(ids.shape[0]):
                group = []
                for j in range(params.n):
                    r = i * params.n + j
                    tokens, text, reason = finished[r]
                    lp = logprobs[r, : len(tokens)].tolist() if logprobs is not None else None
                    group.append(Completion(text=text, token_ids=tokens, finish_reason=reason, logprobs=lp))
                results.append(group)
        return results

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
