"""What each `trainer.gradient_checkpointing` mode keeps from a forward, and what a forward + backward costs in it.

Run: .venv/bin/python benchmarks/bench_checkpointing.py [--model smollm2|tiny] [--batch 4] [--length 230]
                                                      [--rounds 8] [--precision auto|fp32|bf16]
One model per mode (false, selective, true), the SFT loss (the head in blocks, training/head.py) on the same random
tokens. "kept" is what the decoder layers' forward leaves alive for the backward, counted by following every tensor
their ops make (`KeptBytes`, parameters left out), per token and layer in floats of 4 bytes. The time is a forward +
backward, the modes taking turns for `--rounds` rounds after one warm-up round (this VM's speed drifts; turns keep the
drift out of the comparison); the mean and the median over the rounds, and the mean against `false`'s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = (False, "selective", True)


class KeptBytes(TorchDispatchMode):
    """Follows the storage of every tensor an op of a decoder layer (`model.model.layers`) makes while active;
    `bytes()` is what of it is still alive (what the autograd graph, or a checkpoint's cache, keeps for the
    backward), the parameters and their views left out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.refs: dict[int, weakref.ref] = {}
        self.params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.inside = False
        self.hooks = []
        for layer in model.model.layers:
            self.hooks += [layer.register_forward_pre_hook(lambda *_: setattr(self, "inside", True)),
                           layer.register_forward_hook(lambda *_: setattr(self, "inside", False))]

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out) if self.inside else ():
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                old = self.refs.get(storage.data_ptr())
                if old is None or old() is None:  # a freed storage's address may be reused by a new one
                    self.refs[storage.data_ptr()] = weakref.ref(storage)
        return out

    def bytes(self) -> int:
        return sum(s.nbytes() for ptr, ref in self.refs.items() if (s := ref()) is not None and ptr not in self.params)


def load(model_dir: Path, mode, dtype: torch.dtype) -> torch.nn.Module:
    """The model in training mode under checkpointing `mode`."""
    from transformers import AutoModelForCausalLM

    from skillexp.training.recompute import enable_checkpointing

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).train()
    enable_checkpointing(model, mode)
    return model


def sft_loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The SFT loss of every next token, from the last hidden state through the head in blocks."""
    from skillexp.training.forward import policy_head, target_logprobs

    return -target_logprobs(model, policy_head(model), ids.roll(-1, 1), input_ids=ids,
                            attention_mask=torch.ones_like(ids), use_cache=False).mean()


def step_seconds(model: torch.nn.Module, ids: torch.Tensor) -> float:
    t = time.perf_counter()
    sft_loss(model, ids).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=230)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = ap.parse_args()
    from benchmarks.bench_sft import model_dir
    from benchmarks.machine import header, resolve
    from skillexp.precision import DTYPE_OF

    print(header(args.precision))
    dtype = getattr(torch, DTYPE_OF[resolve(args.precision)])
    torch.manual_seed(0)
    models = {mode: load(model_dir(args.model), mode, dtype) for mode in MODES}
    layers = models[False].config.num_hidden_layers
    ids = torch.randint(5, models[False].config.vocab_size, (args.batch, args.length))
    kept = {}
    for mode, model in models.items():
        with KeptBytes(model) as probe:
            loss = sft_loss(model, ids)
        kept[mode] = probe.bytes() / (args.batch * args.length * layers * 4)
        del loss
    times: dict = {mode: [] for mode in MODES}
    for r in range(args.rounds + 1):
        for mode, model in models.items():
            dt = step_seconds(model, ids)
            if r:  # round 0 warms up
                times[mode].append(dt)
    print(f"\nmodel={args.model} batch={args.batch} length={args.length} precision={resolve(args.precision)} "
          f"rounds={args.rounds}\n")
    print("| gradient_checkpointing | kept, floats / token / layer | vs false | fwd + bwd s, mean | median | "
          "vs false |\n|---|---|---|---|---|---|")
    base_kept, base_t = kept[False], statistics.mean(times[False])
    for mode in MODES:
        mean = statistics.mean(times[mode])
        print(f"| {str(mode).lower()} | {kept[mode]:,.0f} | {kept[mode] / base_kept:.2f}x | {mean:.2f} | "
              f"{statistics.median(times[mode]):.2f} | {mean / base_t:.2f}x |")


if __name__ == "__main__":
    main()
