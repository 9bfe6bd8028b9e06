"""Chat backend on our own generation stack (`generation=hf|vllm`): a bigger local checkpoint as STAT's teacher.

Conversations are rendered with the teacher's chat template (`render_chat`) and generated in chunks, each stored
in the cache as soon as it is done, so a killed run loses at most one chunk. The engine starts on the first
request the cache cannot answer: a fully cached re-run never loads the model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from skillexp.generation import Generator, SamplingParams, build_generator, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.models import resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.teachers.chat import ChatBackend, Conversation, OnResult

CHUNK = 64  # conversations per generate() call: large enough to batch well, small enough to lose little on a kill


class LocalChat(ChatBackend):
    def __init__(self, model_cfg: ModelConfig, gen_cfg: GenerationConfig, model_cache_dir: str | Path,
                 cache_dir: str | Path | None = None, seed: int = 0):
        # the cache keys on name + path + revision: retrain a checkpoint in place under the same name and you must
        # clear (or move) teacher.cache_dir
        super().__init__(f"local:{model_cfg.name}:{model_cfg.path or ''}:{model_cfg.revision or ''}", cache_dir)
        self.model_cfg, self.gen_cfg = model_cfg, gen_cfg
        self.model_cache_dir, self.seed = Path(model_cache_dir), seed
        self._gen: Generator | None = None

    def _generator(self) -> Generator:
        if self._gen is None:
            model_dir = resolve_model_dir(self.model_cfg, self.model_cache_dir)
            self._gen = build_generator(model_dir, self.model_cfg, self.gen_cfg, self.seed)
        return self._gen

    def _generate(self, conversations: Sequence[Conversation], params: dict[str, Any], on_result: OnResult) -> None:
        gen = self._generator()
        greedy = params["temperature"] == 0
        sampling = SamplingParams(n=1 if greedy else params["n"], temperature=params["temperature"],
                                  max_tokens=params["max_tokens"], seed=params["seed"])
        limit = self.model_cfg.max_model_len - params["max_tokens"]
        for start in range(0, len(conversations), CHUNK):
            prompts = render_chat(gen.tokenizer, conversations[start: start + CHUNK])
            fits = [j for j, p in enumerate(prompts) if len(p) <= limit]
            for j in (j for j, p in enumerate(prompts) if len(p) > limit):
                self.counts["local/prompt_too_long"] += 1
                on_result(start + j, None)
            outs = gen.generate([prompts[j] for j in fits], sampling) if fits else []
            for j, completions in zip(fits, outs):
                self.counts["local/truncated"] += sum(c.truncated for c in completions)
                self.counts["local/completion_tokens"] += sum(len(c.token_ids) for c in completions)
                texts = [c.text for c in completions]
                on_result(start + j, texts * params["n"] if greedy else texts)  # greedy: n identical samples

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
