"""Token log-probs (and entropies) straight from the last hidden state, without the [B, T, V] logits.

A causal LM's logits at the sampled tokens are `hidden @ W.T` (W the output head, [V, H]); GRPO only needs one
log-prob per completion token, log softmax(logits / temperature)[target]. Materialising the logits costs, per
token, V floats for the logits, again for their float32 copy, for the softmax the backward keeps and for the
gradient: with SmolLM2's 49k vocabulary that is most of an update's memory and elementwise work. `head_logprobs`
runs the head on blocks of `chunk` rows and keeps only one float per row (the log-sum-exp); its backward
recomputes each block's logits and turns them straight into the gradients of the hidden states and of W (the
same trade Liger's fused linear cross-entropy makes). The matmuls run in the model's dtype, as the head's own
forward does, and the rest in float32, so the values are those of the logits path (training/forward.py checks both).
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

HEAD_CHUNK = 512  # rows of logits at a time: 512 x a 152k vocabulary is 0.3 GB of float32


def _logits(hidden: torch.Tensor, weight: torch.Tensor, temperature: float) -> torch.Tensor:
    """A fresh float32 tensor of logits (the callers work on it in place)."""
    logits = (hidden @ weight.T).float()
    return logits / temperature if temperature > 0 and temperature != 1 else logits


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum(a x b) per row, as a batched matmul (no [rows, V] product tensor)."""
    return (a.unsqueeze(1) @ b.unsqueeze(2)).view(-1)


class _HeadLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, temperature, chunk, entropy):
        n = hidden.shape[0]
        logp = hidden.new_empty(n, dtype=torch.float32)
        lse = hidden.new_empty(n, dtype=torch.float32)
        ent = hidden.new_empty(n if entropy else 0, dtype=torch.float32)
        for s in range(0, n, chunk):
            z = _logits(hidden[s: s + chunk], weight, temperature)
            picked = z.gather(-1, targets[s: s + chunk, None]).squeeze(-1)
            top = z.amax(-1, keepdim=True)
            z.sub_(top)  # z = logits - max; e = exp(z); lse = max + log(sum e)
            e = torch.exp(z)
            log_total = e.sum(-1).log_()
            lse[s: s + chunk] = part = top.squeeze(-1) + log_total
            logp[s: s + chunk] = picked - part
            if entropy:  # H = -sum p log p = log(sum e) - sum(e z) / sum e
                ent[s: s + chunk] = log_total - _rowdot(e, z) / log_total.exp()
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.temperature, ctx.chunk = temperature, chunk
        ctx.mark_non_differentiable(ent)
        return logp, ent

    @staticmethod
    def backward(ctx, grad_logp, _grad_ent):
        hidden, weight, targets, lse = ctx.saved_tensors
        t, chunk = ctx.temperature, ctx.chunk
        scale = 1 / t if t > 0 and t != 1 else 1.0
        grad_h = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if ctx.needs_input_grad[1] \
            else None
        for s in range(0, hidden.shape[0], chunk):
            h, g = hidden[s: s + chunk], grad_logp[s: s + chunk].float() * scale
            # d logp / d logits = onehot(target) - softmax, times the incoming gradient, over the temperature
            d = _logits(h, weight, t).sub_(lse[s: s + chunk, None]).exp_().mul_(-g[:, None])
            d = d.scatter_add_(1, targets[s: s + chunk, None], g[:, None]).to(hidden.dtype)
            if grad_h is not None:
                grad_h[s: s + chunk] = d @ weight
            if grad_w is not None:
                grad_w += (d.T @ h).float()
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None, None


def head_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
                  chunk: int = HEAD_CHUNK, entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log softmax(hidden @ weight.T / temperature)[targets] per row, float32 [N], differentiable in `hidden`
    and `weight`; with `entropy`, also each row's entropy (float32 [N], no gradient), else None.

    hidden [N, H] and weight [V, H] in the model's dtype, targets [N] token ids. Memory beyond the inputs: one
    block of `chunk` x V float32 logits at a time (and a float32 copy of W's gradient in the backward)."""
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1] or weight.shape[1] != hidden.shape[1]:
        raise ValueError(f"head_logprobs wants hidden [N, H], weight [V, H], targets [N]; got "
                         f"{tuple(hidden.shape)}, {tuple(weight.shape)}, {tuple(targets.shape)}.")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}.")
    logp, ent = _HeadLogprobs.apply(hidden, weight, targets, temperature, chunk, entropy)
    return logp, ent if entropy else None


# the same log-probs and entropies from logits a model has already built (the path for models outside
# forward.py's PLAIN_HEAD, and under ZeRO-3)
def _pieces(batch: int, length: int, chunk: int) -> Iterator[tuple[slice, slice]]:
    """(sequence slice, position slice) blocks of at most `chunk` positions (one if `chunk` < length), in row-major
    order. Slicing keeps views of the logits: reshaping a non-contiguous [B, T, V] to [B*T, V] would copy it."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}.")
    if length <= chunk:
        step = chunk // max(length, 1)
        for i in range(0, batch, step):
            yield slice(i, i + step), slice(None)
    else:
        for b in range(batch):
            for t in range(0, length, chunk):
                yield slice(b, b + 1), slice(t, t + chunk)


def _chunked(logits: torch.Tensor, chunk: int, fn: Callable[[slice, slice], torch.Tensor]) -> torch.Tensor:
    batch, length = logits.shape[:2]
    parts = [fn(bs, ts).reshape(-1) for bs, ts in _pieces(batch, length, chunk)]
    if not parts:
        return logits.new_zeros(batch, length)
    return torch.cat(parts).view(batch, length)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """log softmax(logits)[target] per position, [B, T], differentiable.

    Computed as logit[target] - logsumexp(logits) on blocks of at most `chunk` positions, so no [B, T, V]
    log-softmax (a second copy of the largest tensor in the step) exists at once; backward also runs block by
    block. Works in the logits' dtype: pass float32 logits (the trainer does) for precise ratios."""
    def piece(bs: slice, ts: slice) -> torch.Tensor:
        part = logits[bs, ts]
        return part.gather(-1, targets[bs, ts, None]).squeeze(-1) - torch.logsumexp(part, -1)

    return _chunked(logits, chunk, piece)


@torch.no_grad()
def token_entropy(logits: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Entropy of each position's distribution, float32 [B, T], in the same blocks as `token_logprobs`. A
    diagnostic: policy collapse shows as falling entropy."""
    def piece(bs: slice, ts: slice) -> torch.Tensor:
        logp = torch.log_softmax(logits[bs, ts].float(), -1)
        return -(logp.exp() * logp).sum(-1)

    return _chunked(logits, chunk, piece)
