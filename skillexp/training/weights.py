"""The policy's current full weights, named as a plain HF checkpoint of the base model names them.

A sampler (vLLM's `reload_weights`) and an export both want what `save_pretrained` of the base model would write,
whatever the engine holds: ZeRO-3 shards, peft LoRA adapters beside frozen (possibly 4-bit) base weights, tied
embeddings. `policy_weights` walks the module tree once and yields those tensors a module at a time, so the whole
model never exists twice in memory:

- ZeRO-3: each module's own parameters are gathered, copied and released before the copies are yielded. The
  gather is collective: every rank must run the generator to its end, in the same order;
- LoRA: each adapted layer yields W + scaling * B @ A under the base layer's name, computed on the fly (the model
  is left unmerged; dropout plays no part, as in eval); the adapter matrices themselves are not yielded, and
  `modules_to_save` copies replace the modules they were copied from;
- 4-bit (QLoRA) base weights are dequantized;
- a parameter shared by two names (tied embeddings) is yielded once, under its first name, as `save_pretrained`
  does (`model.embed_tokens.weight`, not `lm_head.weight`).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

Named = Iterator[tuple[str, torch.Tensor]]
QUANTIZED = ("Params4bit", "Int8Params")  # bitsandbytes' parameter classes


def policy_weights(engine) -> Named:
    """(name, tensor) for every tensor of a plain HF checkpoint of the policy, lazily, a module at a time.
    `engine` is a DeepSpeed engine (or a bare module). Tensors are detached; under ZeRO-3, and wherever they are
    computed (merged LoRA, dequantized), they are fresh copies the caller may keep."""
    module = getattr(engine, "module", engine)
    zero3 = hasattr(engine, "zero_optimization_stage") and engine.zero_optimization_stage() == 3
    yield from _walk(_base_model(module), "", zero3, set())


def _base_model(module: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a peft wrapper (its names carry no `base_model.model.` prefix), else
    `module`. Only LoRA adapters can be merged here; other peft methods are refused."""
    from peft import PeftModel, PeftType

    if not isinstance(module, PeftModel):
        return module
    kinds = sorted({cfg.peft_type.value for cfg in module.peft_config.values()})
    if kinds != [PeftType.LORA.value]:
        raise ValueError(f"policy_weights merges LoRA adapters only; this model has {kinds}.")
    return module.get_base_model()


def _walk(module: torch.nn.Module, prefix: str, zero3: bool, seen: set[int]) -> Named:
    """Depth first in `named_parameters` order, so that a shared tensor keeps the name a checkpoint gives it."""
    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper, ModulesToSaveWrapper

    if isinstance(module, LoraLayer):
        yield from _merged_lora(module, prefix, zero3, seen)
        return
    if isinstance(module, ModulesToSaveWrapper):  # the trained copy stands in for the original
        yield from _walk(_saved_module(module, prefix), prefix, zero3, seen)
        return
    if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)):
        raise ValueError(f"policy_weights cannot merge {prefix.rstrip('.')} ({type(module).__name__}): only plain "
                         "LoRA layers and modules_to_save are supported.")
    yield from _own_tensors(module, prefix, zero3, seen)
    for name, child in module.named_children():
        yield from _walk(child, f"{prefix}{name}.", zero3, seen)


def _state_items(module: torch.nn.Module, seen: set[int]) -> list[tuple[str, torch.Tensor]]:
    """A module's own parameters and persistent buffers (what its `state_dict` holds), less tensors already
    yielded under another name; marks them seen."""
    items = [*module.named_parameters(recurse=False),
             *((n, b) for n, b in module.named_buffers(recurse=False) if n not in module._non_persistent_buffers_set)]
    items = [(n, t) for n, t in items if t is not None and id(t) not in seen]
    seen.update(id(t) for _, t in items)
    return items


def _gathered(params: list[torch.nn.Parameter], zero3: bool):
    """Under ZeRO-3, the full values of `params` for the duration of the block (every rank takes part)."""
    if not zero3 or not params:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params)


def _value(module: torch.nn.Module, name: str, tensor: torch.Tensor, copy: bool) -> torch.Tensor:
    """A tensor as a checkpoint holds it: dequantized if bitsandbytes quantized it, a copy if `copy`."""
    if type(tensor).__name__ in QUANTIZED and name == "weight":
        from peft.utils.integrations import dequantize_module_weight

        return dequantize_module_weight(module).detach()
    return tensor.detach().clone() if copy else tensor.detach()


def _own_tensors(module: torch.nn.Module, prefix: str, zero3: bool, seen: set[int]) -> Named:
    items = _state_items(module, seen)
    if not items:
        return
    with _gathered([t for _, t in items if isinstance(t, torch.nn.Parameter)], zero3), torch.no_grad():
        out = [(prefix + n, _value(module, n, t, copy=zero3)) for n, t in items]
    yield from out  # after the gathered storage is released


def _pending_adapters(layer, name: str) -> list[str]:
    """The adapters whose update `layer`'s forward adds to its base weight (active, not merged into it)."""
    if layer.disable_adapters:
        if layer.merged:
            raise ValueError(f"{name}: adapters are disabled but merged into the base weight; unmerge them first.")
        return []
    pending = [a for a in layer.active_adapters if a not in layer.merged_adapters
               and (a in layer.lora_A or a in getattr(layer, "lora_embedding_A", {}))]
    variants = [a for a in pending if a in getattr(layer, "lora_variant", {})]
    if variants:
        raise ValueError(f"{name}: adapters {variants} are a LoRA variant (e.g. DoRA), which policy_weights cannot "
                         "merge; trainer.lora builds plain LoRA.")
    return pending


def _merged_lora(layer, prefix: str, zero3: bool, seen: set[int]) -> Named:
    """The base layer's tensors with every pending adapter added: W + scaling * B @ A (peft's `get_delta_weight`,
    which also handles fan-in/fan-out layouts), and the adapter's bias where it has one."""
    base = layer.get_base_layer()
    adapters = _pending_adapters(layer, prefix.rstrip("."))
    params = [p for p in layer.parameters() if id(p) not in seen]
    items = _state_items(base, seen)
    seen.update(id(p) for p in params)  # the adapter matrices are folded in, never yielded
    with _gathered(params, zero3), torch.no_grad():
        out = []
        for name, tensor in items:
            value = _value(base, name, tensor, copy=zero3)
            for adapter in adapters:
                if name == "weight":
                    value = (value + layer.get_delta_weight(adapter)).to(value.dtype)
                elif name == "bias" and layer.lora_bias.get(adapter):
                    value = (value + layer.lora_B[adapter].bias * layer.scaling[adapter]).to(value.dtype)
            out.append((prefix + name, value))
    yield from out


def _saved_module(wrapper, prefix: str) -> torch.nn.Module:
    """The module a `modules_to_save` wrapper runs: its active adapter's trained copy, or the original."""
    if wrapper.disable_adapters or not wrapper.active_adapters:
        return wrapper.original_module
    if len(wrapper.active_adapters) > 1:
        raise ValueError(f"{prefix.rstrip('.')}: modules_to_save with several active adapters cannot be merged.")
    return wrapper.modules_to_save[wrapper.active_adapters[0]]
