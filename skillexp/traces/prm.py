r"""Difficult questions by a process reward model (STAT §2.1), with the paper's τ1/τ2 rule.

Rule (paper Eq. 1): with step rewards r_1..r_t (the answer in the last step) a solution is difficult iff
r_t <= τ1, or mean(r) <= τ1, or r_i <= τ2 for some i < t. The authors' code (AdaptMI `math-rm/rm_classify.py`)
tests steps 2..t against τ2 instead of 1..t-1: `rule: adaptmi`.

Scoring follows that code's chat format for RLHFlow PRMs: the question and the first step form the first user
turn, each later step a new user turn, each answered by the assistant with the good token ("+"). A step's reward is
P(good) / (P(good) + P(bad)) for the assistant's reply to it, read at the end of the generation prompt after the
step: the position the authors read (-3 of the full sequence, before "+<|eot_id|>"), found without assuming a
template. Solutions are split on `step_separator` ("\n\n": the authors' default "ки\n" never occurs in student
text, so it gave one step) and get the authors' final step "The final answer is: \boxed{answer}."; a sample
without an extractable answer gets reward 0 for that step.
"""
from __future__ import annotations

from statistics import fmean
from typing import Sequence

import torch

from skillexp.generation.base import render_chat
from skillexp.traces.config import PRMConfig


def prm_difficult(rewards: Sequence[float], tau1: float, tau2: float, rule: str = "paper") -> bool:
    """Is a solution with these step rewards judged difficult? (No steps: difficult.)"""
    if not rewards:
        return True
    earlier = rewards[:-1] if rule == "paper" else rewards[1:]
    return rewards[-1] <= tau1 or fmean(rewards) <= tau1 or any(r <= tau2 for r in earlier)


def solution_steps(solution: str, answer: str | None, separator: str, max_steps: int) -> list[str]:
    """The steps the PRM scores: non-empty chunks between separators (beyond `max_steps` - 1 the rest is merged
    into the last chunk), then the final-answer step when there is an answer."""
    steps = [s.strip() for s in solution.split(separator) if s.strip()]
    keep = max(max_steps - 1, 1)
    if len(steps) > keep:
        steps = steps[:keep - 1] + [separator.join(steps[keep - 1:])]
    if answer is not None:
        steps.append(f"The final answer is: \\boxed{{{answer}}}.")
    return steps


class PRMScorer:
    """An HF causal LM used as a PRM, on one device; `close()` frees it before the teacher starts."""

    def __init__(self, cfg: PRMConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, model = cfg, cfg.model
        device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, cfg.dtype)).to(device).eval()
        ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in (cfg.good_token, cfg.bad_token)]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"PRM {model}: good_token {cfg.good_token!r} and bad_token {cfg.bad_token!r} must be "
                             f"single tokens, got ids {ids}; set method.stat.prm.good_token/bad_token.")
        self.verdict_ids = [ids[0][0], ids[1][0]]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def prompts(self, question: str, steps: Sequence[str]) -> list[list[int]]:
        """One prompt per step: the conversation up to that step, ending where the PRM writes its verdict (older
        tokens are cut beyond `max_length`: the verdict position is always kept)."""
        messages: list[dict[str, str]] = []
        out = []
        for i, step in enumerate(steps):
            messages.append({"role": "user", "content": f"{question} {step}" if i == 0 else step})
            out.append(render_chat(self.tokenizer, [messages])[0][-self.cfg.max_length:])
            messages.append({"role": "assistant", "content": self.cfg.good_token})
        return out

    @torch.no_grad()
    def step_rewards(self, questions: Sequence[str], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        """For each (question, steps), the reward of every step."""
        prompts = [(k, ids) for k, (q, s) in enumerate(zip(questions, steps, strict=True))
                   for ids in self.prompts(q, s)]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i][1]))  # similar lengths per batch
        rewards = [0.0] * len(prompts)
        device = next(self.model.parameters()).device
        for start in range(0, len(order), self.cfg.batch_size):
            batch = [prompts[i][1] for i in order[start:start + self.cfg.batch_size]]
            width = max(map(len, batch))
            ids = torch.tensor([[self.pad_id] * (width - len(b)) + b for b in batch], device=device)
            mask = torch.tensor([[0] * (width - len(b)) + [1] * len(b) for b in batch], device=device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
            probs = logits[:, -1, self.verdict_ids].float().softmax(-1)[:, 0]
            for i, p in zip(order[start:start + self.cfg.batch_size], probs.tolist()):
                rewards[i] = p
        out: list[list[float]] = [[] for _ in questions]
        for (k, _), r in zip(prompts, rewards):
            out[k].append(r)
        return out

    def close(self) -> None:
        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
