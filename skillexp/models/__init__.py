"""Build or locate a Hugging Face model directory for a `model=` config, and load it.

Every later stage (generation engines, trainers) takes a plain HF directory, so locally built models (tiny) and
converted ones (GGUF) are materialised once into the shared cache:

    <cache_dir>/models/tiny-<recipe hash>/        the tiny model; the same for every `model.name`
    <cache_dir>/models/<name>-<source hash>/      a GGUF conversion, keyed by the file and the recipe
    <cache_dir>/models/<dir>.lock                 held while building

Builds are atomic and locked: a build writes into a temp dir next to the target and `os.replace`s it into place,
under a file lock, so a killed or concurrent build never leaves a half-written directory that is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from filelock import FileLock

from skillexp.models.config import ModelConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PROVENANCE = "skillexp_model.json"  # written into built dirs: what they were built from


def _target(cfg: ModelConfig, cache_dir: Path) -> tuple[Path, dict[str, object]]:
    """Where `cfg` is built, and the recipe that the directory name hashes."""
    if cfg.source == "tiny":
        from skillexp.models.tiny import recipe_digest

        return cache_dir / "models" / f"tiny-{recipe_digest()}", {"source": "tiny", "recipe": recipe_digest()}
    from skillexp.models.gguf import check_source

    recipe = {"source": "gguf", **check_source(cfg, cache_dir)}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir / "models" / f"{cfg.name}-{digest}", recipe


def _build(cfg: ModelConfig, out_dir: Path, work_dir: Path) -> None:
    if cfg.source == "tiny":
        from skillexp.models.tiny import build_tiny

        build_tiny(out_dir)
    else:
        from skillexp.models.gguf import convert_gguf

        convert_gguf(cfg, out_dir, work_dir)


def check_model(cfg: ModelConfig, cache_dir: Path) -> None:
    """Fail at start-up, with the fix, when the model's source is missing (no network, nothing loaded)."""
    if cfg.source == "hf":
        from skillexp.models.hf import check_path

        check_path(cfg)
    elif cfg.source == "gguf":
        from skillexp.models.gguf import check_source

        check_source(cfg, Path(cache_dir))


def resolve_model_dir(cfg: ModelConfig, cache_dir: Path) -> Path:
    """An HF directory for `cfg`: built once into `cache_dir/models/` for tiny/gguf; the hub id or path for hf."""
    if cfg.source == "hf":
        from skillexp.models.hf import resolve_hf

        return resolve_hf(cfg)
    target, recipe = _target(cfg, Path(cache_dir))
    if (target / PROVENANCE).exists():  # written last: its presence means a complete build
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock"):
        if (target / PROVENANCE).exists():  # another process built it while we waited
            return target
        for stale in target.parent.glob(f".{target.name}.*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # a directory without provenance predates atomic builds: not trusted
            shutil.rmtree(target)
        work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            _build(cfg, work / "model", work)
            (work / "model" / PROVENANCE).write_text(json.dumps(recipe, indent=2, sort_keys=True))
            os.replace(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_dtype(cfg: ModelConfig, device: str) -> torch.dtype:
    """An explicit dtype as is; 'auto' (a config built outside a run, whose start-up resolves it) as
    skillexp/precision.py picks it for `device`: bf16 where it is native, fp16 on CUDA without bf16, else fp32."""
    if cfg.dtype != "auto":
        return DTYPES[cfg.dtype]
    from skillexp.precision import auto_dtype

    return DTYPES[auto_dtype(device)]


def load_tokenizer(model_dir: Path | str, cfg: ModelConfig):
    """The model's tokenizer with left padding (decoder-only batching), a pad token, and `cfg.chat_template`."""
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
    """The model in eval mode on `device`, in the dtype `resolve_dtype` picks."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=resolve_dtype(cfg, device), trust_remote_code=cfg.trust_remote_code,
        revision=cfg.revision)
    return model.to(device).eval()
