"""rl/head.py: log-probs and entropies from the last hidden state, against log_softmax over full logits."""
from __future__ import annotations

import math

import pytest
import torch

from skillexp.rl.head import head_logprobs


def reference(hidden, weight, targets, temperature):
    logits = (hidden @ weight.T).float()
    if temperature != 1:
        logits = logits / temperature
    logp = torch.log_softmax(logits, -1)
    return logp.gather(-1, targets[:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


def test_hand_computed_values() -> None:
    """Two tokens, H = 1: logits are (h x w_v); for h = ln 3 and w = (0, 1), softmax is (1/4, 3/4)."""
    hidden = torch.tensor([[math.log(3)], [0.0]])
    weight = torch.tensor([[0.0], [1.0]])
    logp, ent = head_logprobs(hidden, weight, torch.tensor([1, 0]), entropy=True)
    torch.testing.assert_close(logp, torch.tensor([math.log(0.75), math.log(0.5)]))
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    torch.testing.assert_close(ent, torch.tensor([h, math.log(2)]))


@pytest.mark.parametrize("chunk", [1, 3, 7, 512])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_values_and_gradients_match_the_full_logits(chunk: int, temperature: float) -> None:
    """Any block size (one row, blocks that do not divide the rows, one block for all), with and without a
    temperature; gradients of the hidden states and of the head under a loss that weighs every row differently."""
    torch.manual_seed(0)
    hidden = torch.randn(11, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    upstream = torch.randn(11)
    logp, ent = head_logprobs(hidden, weight, targets, temperature, chunk=chunk, entropy=True)
    (logp * upstream).sum().backward()
    got = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    ref_logp, ref_ent = reference(hidden, weight, targets, temperature)
    (ref_logp * upstream).sum().backward()
    torch.testing.assert_close(logp, ref_logp.detach())
    torch.testing.assert_close(ent, ref_ent.detach())
    torch.testing.assert_close(got[0], hidden.grad)
    torch.testing.assert_close(got[1], weight.grad)
    assert not ent.requires_grad


def test_bf16_matches_the_bf16_heads_own_logits() -> None:
    """In bf16 the head's matmul runs in bf16, as nn.Linear's does, and the rest in float32: the same log-probs
    as the model's own bf16 logits cast to float32, and float32 results."""
    torch.manual_seed(1)
    hidden = torch.randn(9, 32).bfloat16().requires_grad_()
    weight = torch.randn(64, 32).bfloat16().requires_grad_()
    targets = torch.randint(0, 64, (9,))
    logp, _ = head_logprobs(hidden, weight, targets, chunk=4)
    assert logp.dtype == torch.float32
    logp.sum().backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16
    got = hidden.grad.float(), weight.grad.float()
    hidden.grad = weight.grad = None
    ref, _ = reference(hidden, weight, targets, 1.0)
    ref.sum().backward()
    torch.testing.assert_close(logp, ref.detach())
    torch.testing.assert_close(got[0], hidden.grad.float(), atol=0.05, rtol=0.02)
    torch.testing.assert_close(got[1], weight.grad.float(), atol=0.05, rtol=0.02)


def test_no_gradient_asked_no_graph_kept() -> None:
    hidden, weight = torch.randn(4, 8), torch.randn(10, 8)
    logp, ent = head_logprobs(hidden, weight, torch.tensor([1, 2, 3, 4]))
    assert ent is None and not logp.requires_grad
    with torch.no_grad():
        logp, _ = head_logprobs(hidden.requires_grad_(), weight, torch.tensor([1, 2, 3, 4]))
    assert not logp.requires_grad


def test_bad_shapes_are_named() -> None:
    with pytest.raises(ValueError, match=r"hidden \[N, H\], weight \[V, H\], targets \[N\]"):
        head_logprobs(torch.randn(2, 3, 4), torch.randn(5, 4), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        head_logprobs(torch.randn(2, 4), torch.randn(5, 4), torch.tensor([1, 2]), chunk=0)
