"""One sampling engine for the stages that sample successive versions of one model: pre-RL eval, GRPO, final eval.

Starting a vLLM engine costs ~10 s on a laptop CPU and minutes for a 7B on a GPU; swapping weights in costs a
disk read. The pipeline hands the same `SharedEngine` to those stages: the first `load(model_dir)` starts the engine
from `model_dir`, a later one for another directory streams that checkpoint's tensors into the running engine
(vLLM's reload path, which also drops the prefix cache), and a stage that changed the weights itself (GRPO's
syncs) says so with `modified()`. The GRPO stage already holds an engine next to the trainer, so sharing it with
the evals around it needs no more memory. The SFT data builder does not share it: SFT needs the memory back.
"""
from __future__ import annotations

import logging
from pathlib import Path

from skillexp.generation import Generator, build_generator
from skillexp.generation.config import GenerationConfig
from skillexp.models.config import ModelConfig

log = logging.getLogger(__name__)


class SharedEngine:
    """Each stage asks for the engine its own record describes (model settings, generation settings, seed): the
    running engine when it is that one, else a new one (the old one closed first), so a stage always samples with
    what its key says."""

    def __init__(self) -> None:
        self._gen: Generator | None = None
        self._spec: tuple[ModelConfig, GenerationConfig, int] | None = None
        self._weights: Path | None = None  # the checkpoint the engine now holds; None: changed in place
        self.starts = 0
        self.reloads = 0

    def load(self, model_dir: Path, model_cfg: ModelConfig, cfg: GenerationConfig, seed: int) -> Generator:
        """The engine for (`model_cfg`, `cfg`, `seed`) holding `model_dir`'s weights (started on first use)."""
        model_dir = Path(model_dir).resolve()
        spec = (model_cfg, cfg, seed)
        if self._gen is not None and self._spec != spec:
            log.info("the next stage samples with other engine settings: starting a new engine")
            self.close()
        if self._gen is None:
            self._gen = build_generator(model_dir, model_cfg, cfg, seed=seed)
            self._spec = spec
            self.starts += 1
        elif self._weights != model_dir:
            self._gen.load_checkpoint(model_dir)
            self.reloads += 1
        self._weights = model_dir
        return self._gen

    def modified(self) -> None:
        """The holder changed the engine's weights in place (GRPO's syncs): the next `load` reloads."""
        self._weights = None

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        self._gen, self._spec, self._weights = None, None, None

    def __enter__(self) -> SharedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
