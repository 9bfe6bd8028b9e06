"""Chat conversations → token ids with an assistant-only loss mask, and length-grouped or packed batches.

The mask comes from rendering growing prefixes of the conversation with the model's own chat template: the tokens
between "…up to the assistant header" and "…through this assistant turn" are the assistant's, end-of-turn token
included. That only holds if each rendered prefix tokenizes to a prefix of the whole; it is checked for every
example, because a template that breaks it would silently train on the wrong tokens.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from skillexp.training.forward import target_logprobs

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside assistant turns


@dataclass
class TokenizeStats:
    examples: int = 0
    truncated: int = 0  # cut to max_length (truncation=right)
    dropped: int = 0  # longer than max_length (truncation=drop), or no assistant token left after cutting
    tokens: int = 0
    target_tokens: int = 0


def _ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def tokenize_conversation(tokenizer, messages: Sequence[dict]) -> Example:
    """Token ids and labels of one conversation; loss only on assistant turns."""
    messages = [dict(m) for m in messages]
    full = _ids(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE] * len(full)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, messages[:i], generation_prompt=True))
        through = _ids(tokenizer, messages[: i + 1], generation_prompt=False)
        if full[: len(through)] != through or through[:start] != full[:start]:
            raise ValueError("the chat template does not render conversation prefixes as token prefixes; the "
                             "assistant-only mask would be wrong. Set model.chat_template to a template that does.")
        labels[start: len(through)] = full[start: len(through)]
    return Example(full, labels)


def tokenize_dataset(tokenizer, conversations: Sequence[Sequence[dict]], max_length: int,
                     truncation: Literal["right", "drop"] = "right") -> tuple[list[Example], TokenizeStats]:
    stats = TokenizeStats()
    out = []
    for messages in conversations:
        ex = tokenize_conversation(tokenizer, messages)
        if len(ex.input_ids) > max_length:
            if truncation == "drop":
                stats.dropped += 1
                continue
            ex = Example(ex.input_ids[:max_length], ex.labels[:max_length])
            stats.truncated += 1
        n_target = sum(label != IGNORE for label in ex.labels)
        if n_target == 0:
            stats.dropped += 1
            continue
        stats.examples += 1
        stats.tokens += len(ex.input_ids)
        stats.target_tokens += n_target
        out.append(ex)
    return out, stats


Batch = list[list[int]]  # one micro-batch: rows of example indices (one per row unpacked, several when packed)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                           group: int = 64) -> list[Batch]:
    """Batches of similar-length examples in a random order that depends only on (seed, epoch), so a resumed run
    sees the same batches. Sorting within windows of `group` batches cuts padding without ordering by length."""
    rng = random.Random(f"{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w: w + window], key=lambda i: lengths[i])
        batches += [[[i] for i in chunk[j: j + batch_size]] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def packed_batches(lengths: Sequence[int], rows: int, pack_length: int, seed: int, epoch: int,
                   window: int = 1024) -> list[Batch]:
    """Best-fit-decreasing packing of examples into rows of at most `pack_length` tokens, `rows` rows per batch.

    Packing runs over shuffled windows of `window` examples, so which examples share a row changes every epoch
    while the result depends only on (seed, epoch), as a resumed run needs."""
    if max(lengths, default=0) > pack_length:
        raise ValueError(f"an example has {max(lengths)} tokens, more than sft.pack_length={pack_length}; "
                         "set sft.pack_length >= sft.max_length.")
    rng = random.Random(f"pack-{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    bins: list[list[int]] = []
    for w in range(0, len(order), window):
        free: list[int] = []  # tokens left in each of this window's rows
        start = len(bins)
        for i in sorted(order[w: w + window], key=lambda i: -lengths[i]):
            fits = [r for r, room in enumerate(free) if room >= lengths[i]]
            if fits:
                r = min(fits, key=lambda r: free[r])
                bins[start + r].append(i)
                free[r] -= lengths[i]
            else:
                bins.append([i])
                free.append(pack_length - lengths[i])
    rng.shuffle(bins)
    return [bins[j: j + rows] for j in range(0, len(bins), rows)]


def collate(rows: Sequence[Sequence[Example]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors for training; each row holds one example or several packed end to end.

    No attention mask: position ids restart at 0 for every example, and transformers turns those restarts into a
    block-diagonal causal mask, so packed examples never attend to each other. Padding continues the last
    example's positions; causality keeps real tokens from seeing it, and it carries no loss. The first token of
    every example is never a target, so no example is trained to follow its row neighbour."""
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e.input_ids)
            ids[r, at: at + n] = torch.tensor(e.input_ids)
            labels[r, at + 1: at + n] = torch.tensor(e.labels[1:])
            positions[r, at: at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(n, n + width - at)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def forward(model, batch: dict[str, torch.Tensor]):
    """The model on a collated batch. `use_cache=False` is load-bearing: with a KV cache, transformers skips the
    position-id check that keeps packed examples apart, and they would silently attend to each other."""
    return model(**{k: v.to(model.device) for k, v in batch.items()}, use_cache=False)


def sft_loss(model, batch: dict[str, torch.Tensor], head=None) -> tuple[torch.Tensor, int]:
    """(the mean cross-entropy over a collated batch's target tokens, how many there are). With `head` (the
    decoder and output head from training.forward.policy_head) the loss comes from the last hidden state, 512 target
    positions at a time (training/head.py): the [B, T, V] logits are never built, and positions that train nothing
    (prompts, padding) never reach the head. Without it, the model's own loss over its logits: the same value."""
    targets = batch["labels"][:, 1:]
    n = int((targets != IGNORE).sum())
    if head is None:
        return forward(model, batch).loss, n
    inputs = {k: v.to(model.device) for k, v in batch.items() if k != "labels"}
    shifted = torch.cat([targets, torch.full_like(targets[:, :1], IGNORE)], 1).to(model.device)
    return -target_logprobs(model, head, shifted, **inputs, use_cache=False).mean(), n
