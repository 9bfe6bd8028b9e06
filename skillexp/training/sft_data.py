"""Chat conversations → token ids with an assistant-only loss mask, and length-grouped batches.

The mask comes from rendering growing prefixes of the conversation with the model's own chat template: the tokens
between "…up to the assistant header" and "…through this assistant turn" are the assistant's, end-of-turn token
included. That only holds if each rendered prefix tokenizes to a prefix of the whole; it is checked for every
example, because a template that breaks it would silently train on the wrong tokens.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

import torch

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


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                           group: int = 64) -> list[list[int]]:
    """Batches of similar-length examples in a random order that depends only on (seed, epoch), so a resumed run
    sees the same batches. Sorting within windows of `group` batches cuts padding without ordering by length."""
    rng = random.Random(f"{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * group
    batches = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w: w + window], key=lambda i: lengths[i])
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors for training (padding never carries loss)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def iterate(examples: Sequence[Example], batches: list[list[int]], pad_id: int,
            start: int = 0) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    for b in range(start, len(batches)):
        yield b, collate([examples[i] for i in batches[b]], pad_id)
