"""Samples of a fixed model remembered per (prompt, decoding settings, seed), shared by every run that asks.

A method x seed sweep samples the base model again and again with the same prompts: SkillFactory and its
ablations draw the same attempts, STAT-Sel and STAT-Syn the same student answers. With this wrapper each
(model, generation config, prompt tokens, sampling params) is sampled once; later calls, in this run or another,
read the completions back, and a call whose prompts are all known never starts the engine.

Exactness: vLLM seeds each request on its own, so a cached completion is exactly what the engine would return
again. HF generate seeds per batch, so with HF a call that is only partly cached samples its missing prompts in a
smaller batch than an uncached run would: valid draws, not the same ones.

Storage: one SQLite file per model identity (WAL mode; concurrent runs write safely, a killed run keeps every
call it finished).
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.stage_cache import digest


class CachedGenerator(Generator):
    def __init__(self, factory: Callable[[], Generator], tokenizer, path: Path):
        self._factory, self._engine = factory, None
        self.tokenizer = tokenizer
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=120, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS samples (key TEXT PRIMARY KEY, completions TEXT NOT NULL)")
        self.hits = self.misses = 0

    def _engine_or_start(self) -> Generator:
        if self._engine is None:
            self._engine = self._factory()
        return self._engine

    def generate(self, prompts: Sequence[list[int]], params: SamplingParams) -> list[list[Completion]]:
        if params.prompt_index is not None:  # the missing prompts would be sampled at other places of the call
            raise ValueError("the sample cache keys prompts by one seed per call: sample without prompt_index.")
        settings = asdict(params)
        keys = [digest({"prompt": list(p), "params": settings}) for p in prompts]
        found: dict[str, list[Completion]] = {}
        for i in range(0, len(keys), 500):  # SQLite caps the parameters of one statement
            chunk = keys[i: i + 500]
            rows = self._db.execute(f"SELECT key, completions FROM samples WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            found.update({k: [Completion(**c) for c in json.loads(v)] for k, v in rows})
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            outs = self._engine_or_start().generate([prompts[i] for i in missing], params)
            rows = [(keys[i], json.dumps([asdict(c) for c in cs])) for i, cs in zip(missing, outs)]
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?)", rows)
            found.update({keys[i]: cs for i, cs in zip(missing, outs)})
        return [found[k] for k in keys]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        raise TypeError("a CachedGenerator samples a fixed model: weights cannot change under its cache.")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        self._db.close()
