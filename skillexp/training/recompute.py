"""Activation checkpointing, `trainer.gradient_checkpointing`: what a decoder layer keeps for its backward.

- `true` (full): each layer keeps only its input and runs again, whole, in the backward (about a third more compute).
- `selective` (op-level, as torchtitan's selective activation checkpointing): each layer keeps the outputs of its
  matmuls and of its attention kernel, and runs its cheap elementwise ops again in the backward (the norms and their
  float32 casts, RoPE, the SwiGLU's activation and product, the residual adds). The forward keeps 43% fewer bytes
  than without checkpointing for a ~6% slower forward + backward (docs/training.md has the figures): no matmul runs
  twice.
- `false`: every layer keeps whatever autograd saves.

Both run through transformers' own gradient checkpointing (non-reentrant `torch.utils.checkpoint`), so a forward
that writes a KV cache cannot run under them: `no_recompute` turns them off around one (GRPO's shared-prompt forward
under `selective`, which then keeps its activations as without checkpointing).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from skillexp.training.config import SELECTIVE

_aten = torch.ops.aten
# the ops whose outputs a layer keeps under `selective`: every matmul, every fused attention kernel (CPU and CUDA)
SAVED_OPS = frozenset((
    _aten.mm.default, _aten.addmm.default, _aten.bmm.default, _aten.baddbmm.default,
    _aten._scaled_dot_product_flash_attention_for_cpu.default, _aten._scaled_dot_product_flash_attention.default,
    _aten._scaled_dot_product_efficient_attention.default, _aten._scaled_dot_product_cudnn_attention.default,
))


def _policy(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _selective_contexts():
    return create_selective_checkpoint_contexts(_policy)


def enable_checkpointing(model: torch.nn.Module, mode: bool | str) -> None:
    """Turn on `mode` (`trainer.gradient_checkpointing`: False, True or "selective") on a transformers model (or a
    peft model around one). The model's config is left as it was (it is exported with the weights, and a config
    that differs from the base's would keep the model off the base's pooled vLLM engine): the training forwards ask
    for no KV cache themselves, and a checkpointed layer refuses one anyway."""
    if not mode:
        return
    kwargs = {"use_reentrant": False, "context_fn": _selective_contexts} if mode == SELECTIVE else None
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextlib.contextmanager
def no_recompute(model: torch.nn.Module) -> Iterator[None]:
    """Within: the model's layers run their plain forward (keeping every activation), as a forward that fills or
    reads a KV cache must; their checkpointing is back on after."""
    layers = [m for m in model.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for m in layers:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in layers:
            m.gradient_checkpointing = True
