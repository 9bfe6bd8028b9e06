"""Budget forcing (SkillFactory §6, after s1): when a completion stops before its token budget, re-open its
reasoning with a trigger (by default `traces.format.BUDGET_TRIGGER`, the tag that opens an attempt, put where the
reasoning closed) and let the model continue up to a larger total budget, so that a model which learned to retry
can use more test-time compute."""
from __future__ import annotations

from dataclasses import replace

from skillexp.generation.base import Completion, Generator, SamplingParams
from skillexp.traces.format import THINK_CLOSE

BUCKET = 32  # continuations are batched by remaining budget, rounded down to this many tokens


def reopen(text: str, trigger: str) -> str:
    """The completion cut before its last reasoning close tag (or kept whole), with the trigger appended."""
    cut = text.rfind(THINK_CLOSE)
    head = text[:cut] if cut >= 0 else text
    return f"{head.rstrip()}\n{trigger}\n"


def force_budget(gen: Generator, prompts: list[list[int]], completions: list[list[Completion]],
                 params: SamplingParams, trigger: str, max_total_tokens: int, rounds: int) -> list[list[Completion]]:
    """Continue every completion that stopped early, `rounds` times at most, within `max_total_tokens` in all."""
    out = [list(group) for group in completions]
    for _ in range(rounds):
        todo = [(i, j) for i, group in enumerate(out) for j, c in enumerate(group)
                if c.finish_reason == "stop" and len(c.token_ids) < max_total_tokens]
        if not todo:
            break
        heads = {(i, j): reopen(out[i][j].text, trigger) for i, j in todo}
        head_ids = {key: gen.tokenizer(text, add_special_tokens=False)["input_ids"] for key, text in heads.items()}
        # batch requests whose remaining budget rounds down to the same multiple of BUCKET tokens
        buckets: dict[int, list[tuple[int, int]]] = {}
        for key, ids in head_ids.items():
            room = (max_total_tokens - len(ids)) // BUCKET * BUCKET
            if room > 0:
                buckets.setdefault(room, []).append(key)
        for room, keys in buckets.items():
            conts = gen.generate([prompts[i] + head_ids[(i, j)] for i, j in keys],
                                 replace(params, n=1, max_tokens=room))
            for (i, j), (cont,) in zip(keys, conts):
                out[i][j] = Completion(text=heads[(i, j)] + cont.text, token_ids=head_ids[(i, j)] + cont.token_ids,
                                       finish_reason=cont.finish_reason)
    return out
