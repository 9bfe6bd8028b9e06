"""`source=hf`: a local model directory or a Hugging Face hub id, used as is.

Nothing is copied: transformers and vLLM read local directories directly and find hub ids in the HF cache (or
download them). The only work here is to fail before any engine starts, with the fix in the message, when the
model cannot be found: a missing local path, or a hub id that is not cached while the hub is offline.
"""
from __future__ import annotations

import os
from pathlib import Path

from skillexp.models.config import ModelConfig


def hub_offline() -> bool:
    """The same truthy values huggingface_hub accepts, read now rather than at its import."""
    return any(os.environ.get(k, "").upper() in ("1", "ON", "YES", "TRUE")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _is_hub_id(name: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def check_path(cfg: ModelConfig) -> Path | None:
    """The start-up check, without network: `cfg.path` is a local model directory (returned) or could be a hub id
    (None); anything else raises FileNotFoundError with the fix."""
    local = Path(cfg.path).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise FileNotFoundError(f"model.path={local} is a directory without config.json: not a HF model "
                                    f"directory (save one with model.save_pretrained(dir)).")
        return local
    if local.exists() or not _is_hub_id(cfg.path):
        raise FileNotFoundError(f"model.path={cfg.path} is neither a local model directory nor a hub id "
                                f"like 'Qwen/Qwen2.5-1.5B-Instruct': give an existing directory or a hub id.")
    return None


def resolve_hf(cfg: ModelConfig) -> Path:
    """`cfg.path` as a directory to load: the local directory, or the hub id (which loaders resolve themselves)."""
    local = check_path(cfg)
    if local is not None:
        return local
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(cfg.path, "config.json", revision=cfg.revision)
        if not isinstance(cached, str):
            raise FileNotFoundError(
                f"model.path={cfg.path} is not in the Hugging Face cache (HF_HOME="
                f"{os.environ.get('HF_HOME', '~/.cache/huggingface')}) and the hub is offline (HF_HUB_OFFLINE=1). "
                f"Fix: on a machine with network run `hf download {cfg.path}` with the same HF_HOME, or download "
                f"it anywhere and set model.path=/path/to/the/directory.")
    return Path(cfg.path)
