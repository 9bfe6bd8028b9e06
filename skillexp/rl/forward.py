"""The policy's forward for GRPO: the logits that predict each completion token, with or without running each
group's prompt once. Both return float32 logits at the sampling temperature; tests/rl/test_grpo.py checks that
they agree, in values and gradients."""
from __future__ import annotations

import torch


def completion_logits(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Logits that predict each completion token, [B, C, V], at the sampling temperature (the distribution the
    rollouts came from; verl does the same)."""
    length = batch["completion_mask"].shape[1]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=length + 1, use_cache=False).logits
    logits = logits[:, :-1].float()
    return logits / temperature if temperature > 0 and temperature != 1 else logits


def shared_prompt_logits(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """The same logits as `completion_logits`, computed with each group's prompt run once: a forward over the
    prompts fills a KV cache (with gradients), repeated for the group's completions, which then attend to it. The
    prompt's last position predicts the first completion token. With G completions per prompt this cuts the
    tokens a step processes from G x (prompt + completion) to prompt + G x completion."""
    group = batch["completion_ids"].shape[0] // batch["prompt_ids"].shape[0]
    attention = batch["prompt_attention"]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["prompt_ids"], attention_mask=attention, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(group)
    first = out.logits.repeat_interleave(group, 0)  # [B, 1, V]: predicts each completion's first token
    comp = batch["completion_ids"]
    lengths = attention.sum(-1).repeat_interleave(group, 0)
    comp_positions = lengths[:, None] + torch.arange(comp.shape[1], device=comp.device)[None]
    full_attention = torch.cat([attention.repeat_interleave(group, 0), torch.ones_like(comp)], 1)
    rest = model(input_ids=comp[:, :-1], attention_mask=full_attention[:, :-1], position_ids=comp_positions[:, :-1],
                 past_key_values=cache, use_cache=True).logits if comp.shape[1] > 1 else first[:, :0]
    logits = torch.cat([first, rest], 1).float()
    return logits / temperature if temperature > 0 and temperature != 1 else logits
