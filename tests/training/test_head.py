"""training/head.py: log-probs and entropies from the last hidden state, against log_softmax over full logits; and
the same from logits in blocks, against hand values."""
from __future__ import annotations

import math

import pytest
import torch

from skillexp.training.head import head_logprobs, token_entropy, token_logprobs


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


# --- from logits, in blocks -------------------------------------------------------------------------------------

def close(a: torch.Tensor, b: list | float, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a.detach(), torch.tensor(b, dtype=a.dtype), atol=tol, rtol=0)


def grad_of(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(loss, x)[0]


@pytest.mark.parametrize("chunk", [1, 2, 7, 1024])  # per-row position blocks, blocks of 2 / of 7 // 3 = 2 rows, all
def test_token_logprobs_equal_log_softmax_gather_with_the_same_gradient(chunk: int) -> None:
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 11, requires_grad=True)
    targets = torch.randint(0, 11, (5, 3))
    ours = token_logprobs(logits, targets, chunk=chunk)
    ref = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(ours, ref)
    weights = torch.randn(5, 3)  # a gradient that differs per position
    torch.testing.assert_close(grad_of((ours * weights).sum(), logits), grad_of((ref * weights).sum(), logits))


def test_token_logprobs_on_a_non_contiguous_slice_and_a_hand_value() -> None:
    torch.manual_seed(1)
    full = torch.randn(2, 6, 5)
    logits, targets = full[:, 1:4], torch.randint(0, 5, (2, 3))  # the trainer slices completion columns
    ref = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    torch.testing.assert_close(token_logprobs(logits, targets, chunk=2), ref)
    # logits [0, ln 3] -> p = [.25, .75]
    close(token_logprobs(torch.tensor([[[0.0, math.log(3)]]]), torch.tensor([[1]])), [[-0.28768]])  # ln .75
    close(token_logprobs(torch.tensor([[[0.0, math.log(3)]]]), torch.tensor([[0]])), [[-1.38629]])  # ln .25


def test_entropy() -> None:
    close(token_entropy(torch.zeros(2, 3, 8), chunk=2), [[2.07944] * 3] * 2)  # uniform over 8: ln 8
    close(token_entropy(torch.tensor([[[100.0, 0.0, 0.0]]])), [[0.0]])  # certain
    # p = [.25, .75]: -(.25 ln .25 + .75 ln .75) = .34657 + .21576 = .56233
    close(token_entropy(torch.tensor([[[0.0, math.log(3)]]])), [[0.56233]])
    logits = torch.randn(4, 5, 9)
    torch.testing.assert_close(token_entropy(logits, chunk=3), token_entropy(logits))

