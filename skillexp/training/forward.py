"""The policy's forward for GRPO: the log-prob of each completion token (and, for the step's statistics, each
position's entropy), at the sampling temperature (the distribution the rollouts came from; verl does the same).

Two choices, each with the same values (tests/rl/test_grpo.py checks them against each other, gradients too):
- the forward runs every sequence in full (`completion_logits`), or each group's prompt once
  (`shared_prompt_logits`: a forward over the prompts fills a KV cache, with gradients, which the group's
  completions attend to; with G completions per prompt the tokens a step processes fall from
  G x (prompt + completion) to prompt + G x completion);
- the log-probs come from the model's logits, or from the last hidden state through `training/head.py` (`policy_head`
  names the models where that is exact), which never materialises the [B, T, V] logits. The head's function runs
  as the head module's own forward (`_through`), so the hooks a module carries run around it as around its usual
  forward: under ZeRO-3, DeepSpeed gathers the sharded head weight for it, again for its backward, and
  reduce-scatters the weight's gradient.
"""
from __future__ import annotations

import torch

from skillexp.training.head import head_logprobs, token_entropy, token_logprobs
from skillexp.training.recompute import no_recompute

# architectures whose logits are exactly last hidden state @ lm_head.weight.T (no soft-capping, scaling or bias)
PLAIN_HEAD = frozenset({"llama", "mistral", "qwen2", "qwen3", "olmo2", "smollm3"})
Head = tuple[torch.nn.Module, torch.nn.Linear]  # (the decoder whose output feeds the head, the head)


def head_applies(model_type: str | None) -> bool:
    """Whether log-probs can come from the last hidden state: a known plain head. `policy_head` decides with it,
    and the memory plan (pipeline.py) before any model loads."""
    return model_type in PLAIN_HEAD


def policy_head(model) -> Head | None:
    """The decoder and head of `model` (a DeepSpeed engine, a peft model or a transformers model) where log-probs
    can be taken from the last hidden state, else None (then the logits are used): the head must be a plain
    bias-free Linear of a known architecture."""
    from peft import PeftModel

    module = getattr(model, "module", model)
    base = module.get_base_model() if isinstance(module, PeftModel) else module
    head = base.get_output_embeddings()
    if not head_applies(getattr(base.config, "model_type", None)) or type(head) is not torch.nn.Linear \
            or head.bias is not None:
        return None
    return base.get_decoder(), head


def _run(model, decoder: torch.nn.Module | None, keep: int, **kwargs):
    """(the logits of the last `keep` positions, 0 = all; or with `decoder`, its last hidden states there, the head
    run on no position; the model's output)."""
    if decoder is None:
        out = model(**kwargs, logits_to_keep=keep)
        return out.logits, out
    seen: list[torch.Tensor] = []
    hook = decoder.register_forward_hook(lambda m, a, o: seen.append(o[0] if isinstance(o, tuple) else
                                                                     o.last_hidden_state))
    try:
        out = model(**kwargs, logits_to_keep=torch.empty(0, dtype=torch.long, device=kwargs["input_ids"].device))
    finally:
        hook.remove()
    return seen[-1][:, -keep:], out


def _through(head: torch.nn.Linear, hidden: torch.Tensor, targets: torch.Tensor, temperature: float,
             entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`head_logprobs` with the head's weight, called as the head's own forward (the entropies, which need no
    gradient, leave on the side: a module's hooks only see its differentiable output)."""
    side: list[torch.Tensor | None] = []

    def forward(h: torch.Tensor) -> torch.Tensor:
        logp, ent = head_logprobs(h, head.weight, targets, temperature, entropy=entropy)
        side.append(ent)
        return logp

    head.forward = forward  # an instance attribute: the class's forward again once deleted
    try:
        logp = head(hidden)
    finally:
        del head.forward
    return logp, side[0]


def completion_logits(model, batch: dict[str, torch.Tensor], decoder: torch.nn.Module | None = None) -> torch.Tensor:
    """What predicts each completion token, [B, C, V] logits (or [B, C, H] hidden states with `decoder`), from
    each row's full prompt + completion."""
    length = batch["completion_mask"].shape[1]
    out, _ = _run(model, decoder, length + 1, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                  position_ids=batch["position_ids"], use_cache=False)
    return out[:, :-1]


def shared_prompt_logits(model, batch: dict[str, torch.Tensor], decoder: torch.nn.Module | None = None
                         ) -> torch.Tensor:
    """The same as `completion_logits`, with each group's prompt run once. The prompt's last position predicts
    the first completion token. The KV cache it fills and reads rules out recomputing a layer in the backward: the
    layers keep every activation here (`no_recompute`), whatever `trainer.gradient_checkpointing` says."""
    with no_recompute(model):
        return _shared_prompt_logits(model, batch, decoder)


def _shared_prompt_logits(model, batch: dict[str, torch.Tensor], decoder: torch.nn.Module | None) -> torch.Tensor:
    group = batch["completion_ids"].shape[0] // batch["prompt_ids"].shape[0]
    attention = batch["prompt_attention"]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    first, out = _run(model, decoder, 1, input_ids=batch["prompt_ids"], attention_mask=attention,
                      position_ids=positions, use_cache=True)
    cache = out.past_key_values
    cache.batch_repeat_interleave(group)
    first = first.repeat_interleave(group, 0)  # [B, 1, .]: predicts each completion's first token
    comp = batch["completion_ids"]
    # the completions but their last token predict the rest; one-token completions have no rest, but the model
    # still runs on them (the output unused): every batch calls the model twice, as ZeRO-3's collective forwards
    # need on ranks whose batches differ
    width = max(comp.shape[1] - 1, 1)
    lengths = attention.sum(-1).repeat_interleave(group, 0)
    comp_positions = lengths[:, None] + torch.arange(comp.shape[1], device=comp.device)[None]
    full_attention = torch.cat([attention.repeat_interleave(group, 0), torch.ones_like(comp)], 1)
    rest, _ = _run(model, decoder, 0, input_ids=comp[:, :width], position_ids=comp_positions[:, :width],
                   attention_mask=full_attention[:, :attention.shape[1] + width], past_key_values=cache, use_cache=True)
    return torch.cat([first, rest], 1) if comp.shape[1] > 1 else first


def completion_logprobs(model, batch: dict[str, torch.Tensor], temperature: float, head: Head | None = None,
                        entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs [B, C] of the completion tokens, float32, differentiable; their positions' entropies [B, C] with
    `entropy`, else None). The batch has "prompt_ids" for the shared-prompt forward (rl/rollout.py's
    `group_tensors`). With `head` (`policy_head`), only the positions of `completion_mask` are computed, the
    others are 0."""
    shared = "prompt_ids" in batch
    mask = batch["completion_mask"]
    targets = batch["completion_ids"] if shared else batch["input_ids"][:, -mask.shape[1]:]
    out = (shared_prompt_logits if shared else completion_logits)(model, batch, head and head[0])
    if head is None:
        logits = out.float()
        if temperature > 0 and temperature != 1:
            logits = logits / temperature
        return token_logprobs(logits, targets), token_entropy(logits) if entropy else None
    keep = mask.bool()
    logp, ent = _through(head[1], out[keep], targets[keep], temperature, entropy)
    full = torch.zeros(keep.shape, dtype=torch.float32, device=keep.device)
    return full.masked_scatter(keep, logp), None if ent is None else full.detach().masked_scatter(keep, ent)


def target_logprobs(model, head: Head, targets: torch.Tensor, **inputs) -> torch.Tensor:
    """log p(targets[b, t] | tokens up to t) for the positions where `targets` >= 0 (a [N] float32 vector in their
    row-major order, differentiable), from the last hidden state through `head` (`policy_head`): the SFT loss
    without the full-vocabulary logits. `targets` [B, T] aligns with `inputs["input_ids"]`: the target of position t
    is the token that follows it (negative where nothing is trained)."""
    hidden, _ = _run(model, head[0], 0, **inputs)
    keep = targets >= 0
    logp, _ = _through(head[1], hidden[keep], targets[keep], 1.0, False)
    return logp
