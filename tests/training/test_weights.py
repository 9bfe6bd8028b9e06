"""policy_weights: the policy's full weights under a plain checkpoint's names, exactly what save_pretrained writes,
for a full fine-tune (ZeRO-0 and ZeRO-3), LoRA (merged on the fly, the model left unmerged), modules_to_save and
tied embeddings; yielded lazily, one module gathered at a time."""
from __future__ import annotations

import copy
import inspect
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Qwen2Config

from skillexp.models import load_tokenizer
from skillexp.training import engine as engine_module
from skillexp.training.config import LoraConfig, OptimConfig, TrainerConfig
from skillexp.training.engine import build_engine, export_hf
from skillexp.training.weights import policy_weights
from tests.conftest import TINY

OPTIM = OptimConfig(lr=1e-2, warmup_ratio=0.0)


def _model(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)


def _engine(model: torch.nn.Module, **trainer):
    return build_engine(model, TrainerConfig(name="cpu", **trainer), OPTIM, total_steps=2)


def _train_step(engine) -> None:
    """One optimizer step, so that the weights in memory differ from the checkpoint on disk."""
    ids = torch.randint(0, engine.module.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    engine.backward(engine(input_ids=ids, labels=ids).loss)
    engine.step()


def _saved(model: torch.nn.Module, out: Path) -> dict[str, torch.Tensor]:
    model.save_pretrained(out, safe_serialization=True)
    return load_file(out / "model.safetensors")


def _assert_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype, name
        torch.testing.assert_close(got[name], tensor, atol=atol, rtol=0, msg=name)


def test_full_weights_are_what_save_pretrained_writes(tmp_path: Path, tiny_model_dir: Path) -> None:
    engine = _engine(_model(tiny_model_dir))
    _train_step(engine)
    weights = policy_weights(engine)
    assert inspect.isgenerator(weights)
    _assert_equal(dict(weights), _saved(engine.module, tmp_path / "saved"))


def _no_persistent_params(monkeypatch: pytest.MonkeyPatch) -> None:
    """ZeRO-3 keeps parameters under 100k elements (most of the tiny model's) gathered for good; partition all."""
    ds_config = engine_module.ds_config

    def config(cfg, optim):
        out = ds_config(cfg, optim)
        out["zero_optimization"]["stage3_param_persistence_threshold"] = 0
        return out

    monkeypatch.setattr(engine_module, "ds_config", config)


def test_zero3_gathers_one_module_at_a_time_and_matches_the_export(tmp_path: Path, tiny_model_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import deepspeed
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    _no_persistent_params(monkeypatch)
    engine = _engine(_model(tiny_model_dir), zero_stage=3)
    _train_step(engine)
    export_hf(engine, load_tokenizer(tiny_model_dir, TINY), tmp_path / "export")
    params = list(engine.module.parameters())

    def live() -> int:
        return sum(p.ds_status == ZeroParamStatus.AVAILABLE for p in params)

    assert live() == 0
    gathers: list[tuple[int, int]] = []  # (parameters asked for, parameters live) at each gather
    real = deepspeed.zero.GatheredParameters

    class Spy:
        def __init__(self, wanted, *args, **kwargs):
            self.wanted, self.inner = len(wanted), real(wanted, *args, **kwargs)

        def __enter__(self):
            self.inner.__enter__()
            gathers.append((self.wanted, live()))

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(deepspeed.zero, "GatheredParameters", Spy)
    got = {}
    for name, tensor in policy_weights(engine):
        assert live() == 0, f"{name}: parameters still gathered while the caller holds a tensor"
        got[name] = tensor
    own = [len(list(m.parameters(recurse=False))) for m in engine.module.modules()]
    assert len(gathers) == sum(n > 0 for n in own)
    assert all(wanted == now for wanted, now in gathers), gathers  # only the module's own parameters were live
    assert max(now for _, now in gathers) == max(own)
    _assert_equal(got, load_file(tmp_path / "export" / "model.safetensors"))


def _lora_engine(model_dir: Path):
    engine = _engine(_model(model_dir), lora=LoraConfig(r=4, alpha=8))
    with torch.no_grad():  # B starts at 0: give the adapters an update that shows
        for name, p in engine.module.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05, generator=torch.Generator().manual_seed(len(name)))
    return engine


def test_lora_weights_are_merged_on_the_fly_under_the_base_names(tiny_model_dir: Path) -> None:
    from peft.tuners.lora import LoraLayer

    engine = _lora_engine(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    merged = copy.deepcopy(engine.module).merge_and_unload().state_dict()
    base = load_file(tiny_model_dir / "model.safetensors")
    got = dict(policy_weights(engine))
    assert sorted(got) == sorted(base) == sorted(merged)
    _assert_equal(got, merged, atol=1e-6)
    assert not torch.equal(got["model.layers.0.mlp.down_proj.weight"], base["model.layers.0.mlp.down_proj.weight"])
    # the engine's model is as it was: adapters unmerged, every tensor unchanged
    layers = [m for m in engine.module.modules() if isinstance(m, LoraLayer)]
    assert len(layers) == 7 * 2 and not any(m.merged for m in layers)
    after = dict(engine.module.named_parameters())
    assert all(torch.equal(after[n], t) for n, t in before.items())


def test_lora_layers_merge_one_at_a_time(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft.tuners.lora import Linear

    calls: list[int] = []
    delta = Linear.get_delta_weight
    monkeypatch.setattr(Linear, "get_delta_weight", lambda self, adapter: calls.append(1) or delta(self, adapter))
    weights = policy_weights(_lora_engine(tiny_model_dir))
    assert not calls  # nothing computed before the caller asks
    names = []
    for name, _ in weights:
        names.append(name)
        if name == "model.layers.0.self_attn.q_proj.weight":
            assert len(calls) == 1  # the first adapted layer, not the whole model
    assert len(calls) == 14 and names[0] == "model.embed_tokens.weight"


def test_modules_to_save_replace_their_originals(tiny_model_dir: Path) -> None:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    model = get_peft_model(_model(tiny_model_dir), PeftLoraConfig(r=2, target_modules=["v_proj"],
                                                                  modules_to_save=["lm_head"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(0.01)
    engine = _engine(model)
    merged = copy.deepcopy(engine.module).merge_and_unload().state_dict()
    got = dict(policy_weights(engine))
    _assert_equal(got, merged, atol=1e-6)
    assert sorted(got) == sorted(load_file(tiny_model_dir / "model.safetensors"))


def test_tied_embeddings_are_yielded_once_as_a_checkpoint_holds_them(tmp_path: Path) -> None:
    config = Qwen2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    engine = _engine(AutoModelForCausalLM.from_config(config, dtype=torch.float32))
    _train_step(engine)
    saved = _saved(engine.module, tmp_path / "saved")
    assert "lm_head.weight" not in saved
    _assert_equal(dict(policy_weights(engine)), saved)
