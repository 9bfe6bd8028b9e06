"""Budget forcing: early-stopped completions are re-opened with the trigger and continued within the budget."""
from __future__ import annotations

from skillexp.eval.budget_forcing import force_budget, reopen
from skillexp.generation import SamplingParams, render_chat


def test_reopen_cuts_before_the_last_think_close() -> None:
    assert reopen("<think>\na\n</think>\n<answer>1</answer>", "<sample>") == "<think>\na\n<sample>\n"
    assert reopen("plain answer", "<sample>") == "plain answer\n<sample>\n"


def test_force_budget_continues_only_early_stops(hf_tiny) -> None:
    prompts = render_chat(hf_tiny.tokenizer, [[{"role": "user", "content": f"What is {i} + 1?"}] for i in range(6)])
    first = hf_tiny.generate(prompts, SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=0))
    text = next(c.text for g in first for c in g if len(c.text) > 3)
    params = SamplingParams(n=2, temperature=1.0, max_tokens=12, seed=0, stop=[text[2]])  # a frequent character
    base = hf_tiny.generate(prompts, params)
    forced = force_budget(hf_tiny, prompts, base, params, "<sample>", max_total_tokens=80, rounds=1)
    stopped = [(b, f) for gb, gf in zip(base, forced) for b, f in zip(gb, gf) if b.finish_reason == "stop"]
    assert stopped, "the stop string should end some completions early"
    for b, f in stopped:
        assert f.text.startswith(b.text.rstrip()) and "<sample>" in f.text
        assert len(f.token_ids) <= 80
    for gb, gf in zip(base, forced):
        for b, f in zip(gb, gf):
            if b.finish_reason == "length":
                assert f is b
