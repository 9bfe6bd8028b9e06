"""trainer.lora: STAT's recipe as the default, settings the engine cannot combine refused at start-up, only the
adapters train, a LoRA SFT run exports a plain model under the base names and resumes to the same weights, and
QLoRA on a machine without CUDA or bitsandbytes fails naming the fix."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skillexp.config import load_run_config
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.training.config import ATTENTION_AND_MLP, LoraConfig, OptimConfig, SFTConfig, TrainerConfig
from skillexp.training.engine import build_engine, ds_config, load_model
from skillexp.training.sft import run_sft
from skillexp.utils.io import read_jsonl
from skillexp.utils.schema import ConfigError
from tests.conftest import TINY, kill_when
from tests.test_configs import _compose
from tests.training.test_sft import OPTIM, write_dataset

LORA = LoraConfig(r=4, alpha=8)
TRAINER = TrainerConfig(name="cpu", micro_batch_size=8, grad_accum=1, save_every_steps=4, lora=LORA)


def test_the_defaults_are_stats_sft_recipe() -> None:
    lora = LoraConfig()
    assert (lora.r, lora.alpha, lora.dropout) == (16, 32, 0.05)
    assert lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert (lora.quantize, lora.optimizer) == (None, "adamw")
    run = load_run_config(_compose(["trainer=qlora"]))
    assert run.trainer.lora == LoraConfig(quantize="nf4", optimizer="paged_adamw_8bit")
    assert (run.trainer.zero_stage, run.trainer.precision) == (0, "bf16")


@pytest.mark.parametrize(("overrides", "expected"), [
    (["trainer=qlora", "trainer.zero_stage=3"], "trainer.lora.quantize=nf4 keeps 4-bit base weights, which ZeRO-3"),
    (["trainer=zero3", "trainer.lora={r: 8}"], "trainer.lora runs on trainer.zero_stage 0, 1 or 2"),
    (["trainer=zero2", "trainer.offload_optimizer=true", "trainer.lora={optimizer: paged_adamw_8bit}"],
     "trainer.lora.optimizer=paged_adamw_8bit cannot be offloaded"),
    (["trainer=cpu", "trainer.lora={target_modules: []}"], "trainer.lora.target_modules is empty"),
    (["trainer=qlora", "trainer.lora.quantize=nf8"], "trainer.lora.quantize='nf8' is not allowed; choose one of"),
    (["trainer=qlora", "trainer.lora.optimizer=sgd"], "trainer.lora.optimizer='sgd' is not allowed"),
])
def test_settings_the_engine_cannot_combine_fail_at_start_up(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(overrides))
    assert expected in str(e.value)


def test_the_paged_optimizer_is_allowed_under_zero() -> None:
    cfg = TrainerConfig(zero_stage=2, lora=LoraConfig(optimizer="paged_adamw_8bit"))
    assert ds_config(cfg, OptimConfig())["zero_allow_untested_optimizer"] is True
    assert "zero_allow_untested_optimizer" not in ds_config(TrainerConfig(zero_stage=2, lora=LORA), OptimConfig())


@pytest.mark.parametrize("target_modules", [list(ATTENTION_AND_MLP), ["all-linear"]])
def test_only_the_adapters_train(tiny_model_dir: Path, target_modules: list[str]) -> None:
    trainer = dataclasses.replace(TRAINER, lora=dataclasses.replace(LORA, target_modules=target_modules))
    model = load_model(tiny_model_dir, trainer)
    targets = {name: (m.in_features, m.out_features) for name, m in model.named_modules()
               if name.rpartition(".")[2] in ATTENTION_AND_MLP}
    assert len(targets) == 7 * model.config.num_hidden_layers  # every linear layer but lm_head
    engine = build_engine(model, trainer, OptimConfig(lr=1e-2, warmup_ratio=0.0), total_steps=1)
    trainable = {n: p for n, p in engine.module.named_parameters() if p.requires_grad}
    assert all("lora_A" in n or "lora_B" in n for n in trainable)
    assert sum(p.numel() for p in trainable.values()) == sum(LORA.r * (i + o) for i, o in targets.values())
    before = {n: p.detach().clone() for n, p in engine.module.named_parameters()}
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    engine.backward(engine(input_ids=ids, labels=ids).loss)
    engine.step()
    changed = {n for n, p in engine.module.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= set(trainable) and {n for n in trainable if "lora_B" in n} <= changed  # the base is frozen


def _lora_sft(data: Path, model_dir: Path, out: Path, max_steps: int) -> Path:
    tracker = Tracker(LoggerConfig(backend="none"), out.parent, {})
    try:
        return run_sft(data, model_dir, TINY, TRAINER, SFTConfig(max_steps=max_steps, max_length=256,
                                                                 val_fraction=0.0, optim=OPTIM), out, tracker, seed=0)
    finally:
        tracker.finish()


def test_lora_sft_exports_a_plain_model_under_the_base_names(tmp_path: Path, tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = _lora_sft(write_dataset(tmp_path / "data.jsonl", n=32), tiny_model_dir, tmp_path / "sft", max_steps=2)
    base, exported = load_file(tiny_model_dir / "model.safetensors"), load_file(model / "model.safetensors")
    assert sorted(exported) == sorted(base)
    assert not (model / "adapter_config.json").exists()
    changed = [n for n in base if not torch.equal(base[n], exported[n])]
    assert changed and all(n.rpartition(".")[0].rpartition(".")[2] in ATTENTION_AND_MLP for n in changed)
    reloaded = AutoModelForCausalLM.from_pretrained(model)
    assert type(reloaded).__name__ == "Qwen2ForCausalLM" and (model / "tokenizer.json").exists()
    assert all(torch.equal(p, exported[n]) for n, p in reloaded.named_parameters())


def test_killed_lora_sft_resumes_to_the_same_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=64)
    full = _lora_sft(data, tiny_model_dir, tmp_path / "a" / "sft", max_steps=8)
    # the same run in a child process, SIGKILLed once its first checkpoint (step 4) is published
    out = tmp_path / "b" / "sft"
    code = (f"from pathlib import Path; from tests.training.test_lora import _lora_sft; "
            f"_lora_sft(Path({str(data)!r}), Path({str(tiny_model_dir)!r}), Path({str(out)!r}), max_steps=8)")
    latest = out / "checkpoints" / "latest.json"
    kill_when(code, latest.exists, tmp_path / "child.log")
    step = json.loads(latest.read_text())["step"]
    assert step < 8 and not (out / "model").exists(), (tmp_path / "child.log").read_text()[-3000:]
    resumed = _lora_sft(data, tiny_model_dir, out, max_steps=8)
    assert min(r["step"] for r in read_jsonl(tmp_path / "b" / "metrics.jsonl") if "sft/loss" in r) <= step
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


QLORA_RUNS_HERE = torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


@pytest.mark.skipif(QLORA_RUNS_HERE, reason="this machine has CUDA and bitsandbytes: QLoRA is not refused")
def test_qlora_on_this_machine_fails_naming_the_fix(tiny_model_dir: Path) -> None:
    qlora = dataclasses.replace(TRAINER, lora=LoraConfig(quantize="nf4", optimizer="paged_adamw_8bit"))
    with pytest.raises(ConfigError) as e:
        load_model(tiny_model_dir, qlora)
    message = str(e.value)
    assert message.startswith("trainer.lora.quantize=nf4 needs") and "trainer.lora.quantize=null" in message
    if not torch.cuda.is_available():
        assert "a CUDA GPU" in message
    if importlib.util.find_spec("bitsandbytes") is None:
        assert "pip install bitsandbytes" in message
    paged = dataclasses.replace(TRAINER, lora=LoraConfig(optimizer="paged_adamw_8bit"))
    with pytest.raises(ConfigError,
                       match="trainer.lora.optimizer=paged_adamw_8bit needs .*trainer.lora.optimizer=adamw"):
        build_engine(load_model(tiny_model_dir, paged), paged, OptimConfig(), total_steps=1)
