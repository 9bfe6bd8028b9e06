"""Activation checkpointing (training/recompute.py): what each mode keeps after a forward, measured by following
every tensor its layers make (benchmarks/bench_checkpointing.py's `KeptBytes`), against the memory plan's
estimate; the same loss and gradients in every mode; and a forward with a KV cache (GRPO's shared prompt) run
without recomputation."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.bench_checkpointing import MODES, KeptBytes, load, sft_loss
from skillexp.training import recompute
from skillexp.training.config import SELECTIVE
from skillexp.training.memory import ModelShape, activation_bytes
from skillexp.training.recompute import no_recompute


def _model(model_dir: Path, mode) -> torch.nn.Module:
    return load(model_dir, mode, torch.float32)


def test_each_mode_keeps_what_the_plan_says_with_the_same_loss_and_gradients(tiny_model_dir: Path) -> None:
    """Selective keeps under 65% of what no checkpointing keeps, full about a hidden state per layer; each within 15%
    of the memory plan's estimate; the loss and every gradient bit for bit the same in the three modes (fp32, CPU)."""
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (2, 96))
    kept, grads = {}, {}
    for mode in MODES:
        model = _model(tiny_model_dir, mode)
        with KeptBytes(model) as probe:
            loss = sft_loss(model, ids)
        kept[mode] = probe.bytes()
        loss.backward()
        grads[mode] = (loss.detach(), {n: p.grad for n, p in model.named_parameters()})
        shape = ModelShape.from_hf_config(model.config.to_dict())
        estimate = activation_bytes(shape, 2, 96, mode, 4)
        if mode:  # the plan adds one layer's whole set for the backward's recompute, which a forward does not keep
            estimate -= activation_bytes(shape, 2, 96, False, 4) // shape.layers
        assert 0.85 * estimate <= kept[mode] <= 1.15 * estimate, (mode, kept[mode], estimate)
    assert kept[SELECTIVE] < 0.65 * kept[False] and kept[True] < 0.2 * kept[SELECTIVE], kept
    ref_loss, ref_grads = grads[False]
    for mode in (SELECTIVE, True):
        loss, g = grads[mode]
        assert torch.equal(loss, ref_loss), mode  # on a CPU in fp32 the recompute is bit for bit the forward
        for name, grad in ref_grads.items():
            assert torch.equal(g[name], grad), f"{mode}: {name}"


def test_selective_recomputes_every_op_but_the_matmuls_and_attention(tiny_model_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    decisions: dict[str, set] = {"save": set(), "recompute": set()}
    policy = recompute._policy

    def watched(ctx, op, *args, **kwargs):
        choice = policy(ctx, op, *args, **kwargs)
        decisions["save" if choice == recompute.CheckpointPolicy.MUST_SAVE else "recompute"].add(str(op))
        return choice

    monkeypatch.setattr(recompute, "_policy", watched)
    model = _model(tiny_model_dir, SELECTIVE)
    sft_loss(model, torch.randint(5, 300, (2, 16))).backward()
    assert {"aten.mm.default", "aten._scaled_dot_product_flash_attention_for_cpu.default"} <= decisions["save"]
    assert {"aten.mul.Tensor", "aten.silu.default", "aten.add.Tensor", "aten.rsqrt.default"} <= decisions["recompute"]
    assert not decisions["save"] & decisions["recompute"]


def test_no_recompute_runs_the_plain_layers_and_turns_checkpointing_back_on(tiny_model_dir: Path) -> None:
    model = _model(tiny_model_dir, SELECTIVE)
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", None) is not None]
    assert layers and all(m.gradient_checkpointing for m in layers)
    ids = torch.randint(5, 300, (2, 24))
    with no_recompute(model):
        assert not any(m.gradient_checkpointing for m in layers)
        with KeptBytes(model) as plain:
            plain_loss = sft_loss(model, ids)
    assert all(m.gradient_checkpointing for m in layers)
    with KeptBytes(model) as selective:
        selective_loss = sft_loss(model, ids)
    assert 0 < selective.bytes() < 0.65 * plain.bytes()
    torch.testing.assert_close(selective_loss, plain_loss)


def test_the_modes_are_what_the_trainer_config_accepts_and_zero3_refuses_selective() -> None:
    from skillexp.training.config import TrainerConfig
    from skillexp.utils.schema import ConfigError, from_dict

    assert from_dict(TrainerConfig, {"gradient_checkpointing": "selective"}).gradient_checkpointing == SELECTIVE
    with pytest.raises(ConfigError, match=r"gradient_checkpointing='some'.*\[False, True, 'selective'\]"):
        from_dict(TrainerConfig, {"gradient_checkpointing": "some"})
    with pytest.raises(ConfigError, match="selective does not run under trainer.zero_stage=3: set "
                                          "trainer.gradient_checkpointing=true"):
        from_dict(TrainerConfig, {"gradient_checkpointing": "selective", "zero_stage": 3})
