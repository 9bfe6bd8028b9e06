"""Build or locate a Hugging Face model directory for a `model=` config, and load it.

Every later stage (generation engines, trainers) takes a plain HF directory, so locally built models (tiny) and
converted ones (GGUF) are materialised once into the shared cache. Builds are atomic and locked: a killed or
concurrent build never leaves a half-written directory that is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
from filelock import FileLock

from skillexp.models.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _cache_key(cfg: ModelConfig) -> str:
    from skillexp.models import tiny

    fields = {"source": cfg.source, "path": cfg.path, "gguf_file": cfg.gguf_file,
              "tiny_recipe": tiny.RECIPE_VERSION if cfg.source == "tiny" else None}
    if cfg.source == "gguf":
        p = Path(cfg.path)
        fields["size"] = p.stat().st_size if p.is_file() else None
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def _build(cfg: ModelConfig, out_dir: Path, work_dir: Path) -> None:
    if cfg.source == "tiny":
        from skillexp.models.tiny import build_tiny

        build_tiny(out_dir)
    else:
        from skillexp.models.gguf import convert_gguf

        convert_gguf(cfg, out_dir, work_dir)


def resolve_model_dir(cfg: ModelConfig, cache_dir: Path) -> Path:
    """An HF directory for `cfg`: built once into `cache_dir/models/` for tiny/gguf; the hub id or path for hf."""
    if cfg.source == "hf":
        local = Path(cfg.path).expanduser()
        if local.exists():
            return local
        if os.environ.get("HF_HUB_OFFLINE") == "1" and "/" not in cfg.path:
            raise FileNotFoundError(f"model.path={cfg.path} is neither a local directory nor a hub id.")
        return Path(cfg.path)  # a hub id: transformers and vLLM download or find it in the HF cache
    target = Path(cache_dir) / "models" / f"{cfg.source}-{cfg.name}-{_cache_key(cfg)}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():  # another process built it while we waited
            return target
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            _build(cfg, work / "model", work)
            json.dump(asdict(cfg), open(work / "model" / "skillexp_model.json", "w"), indent=2)
            os.replace(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_dtype(cfg: ModelConfig, device: str) -> torch.dtype:
    """'auto' means bf16 on a GPU that supports it and fp32 elsewhere (fp32 is the safe CPU default for HF)."""
    if cfg.dtype != "auto":
        return DTYPES[cfg.dtype]
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(model_dir: Path | str, cfg: ModelConfig):
    """The model's tokenizer with left padding (decoder-only batching) and a pad token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=cfg.trust_remote_code,
                                        revision=cfg.revision)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.chat_template:
        tok.chat_template = cfg.chat_template
    return tok


def load_causal_lm(model_dir: Path | str, cfg: ModelConfig, device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=resolve_dtype(cfg, device), trust_remote_code=cfg.trust_remote_code,
        revision=cfg.revision)
    return model.to(device).eval()
