"""`skillexp teacher estimate <a run's overrides>`: what a run's teacher would be asked, and what it would cost,
printed before any request is sent (a dry run: nothing is sampled, trained or sent).

Per operation: requests, replies (requests x n), how many are already in the teacher's answer cache (those cost
nothing), prompt tokens, completion tokens at most (replies x the operation's max_tokens) and at an assumed reply
length (`--reply-tokens`), and the cost of both at the teacher's price (`teacher.prices`). Tokens are counted as
characters / 4 (OpenAI's rule of thumb; no tokenizer of the teacher is at hand): an estimate, not a bill. The
runs themselves record what the endpoint counted (`teacher/openai/*_tokens`, `teacher/cost_usd`).

A comma list in an override (`method=distill,bolt`) estimates each of its runs, as a sweep would run them.
"""
from __future__ import annotations

import argparse
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skillexp.config import RunConfig

CHARS_PER_TOKEN = 4


@dataclass
class Planned:
    """One teacher operation of a run, as the dry run counts it."""

    op: str
    requests: int
    replies: int
    cached: int  # requests already answered in the teacher's cache
    prompt_tokens: int  # of the requests not cached
    max_tokens: int  # per reply

    def completion_tokens(self, per_reply: int | None = None) -> int:
        """Of the requests not cached: at most (per_reply None), or at `per_reply` tokens per reply."""
        per = self.max_tokens if per_reply is None else min(per_reply, self.max_tokens)
        return (self.requests - self.cached) * (self.replies // max(self.requests, 1)) * per


def _tokens(conversation: list[dict[str, str]]) -> int:
    return sum(len(m.get("content", "")) for m in conversation) // CHARS_PER_TOKEN + 4 * len(conversation)


def plan(run: RunConfig) -> list[Planned]:
    """The teacher operations of `run`'s SFT-data build whose size the config fixes."""
    m = run.method
    if not m.needs_teacher():
        return []
    if m.name not in ("distill", "bolt"):
        raise NotImplementedError(f"the dry run does not count method={m.name}'s teacher requests yet")
    from skillexp.config import read_examples
    from skillexp.methods.distill import conversations
    from skillexp.teachers.chat import ChatCache, chat_request, request_key

    task = run.task.build()
    items = task.items("train")[: m.num_questions]
    convs = conversations(m.name, read_examples(run) if m.name == "bolt" else None, task, items)
    cfg, teacher = m.distill, run.teacher
    params = {"n": cfg.traces_per_question, "temperature": cfg.temperature if teacher.send_temperature else None,
              "max_tokens": cfg.max_tokens, "seed": run.seed if cfg.temperature > 0 else None, "keep_reasoning": True}
    cache_dir = Path(teacher.cache_dir or Path(run.paths.cache_dir) / "teacher")
    cache = ChatCache(cache_dir) if teacher.cache and cache_dir.is_dir() else None
    endpoint = teacher.base_url.rstrip("/") if teacher.base_url else None
    cached, prompt = 0, 0
    for conv in convs:
        request = chat_request(teacher.model or "", conv, params, endpoint)
        if cache is not None and cache.get(request_key(request), request) is not None:
            cached += 1
        else:
            prompt += _tokens(conv)
    return [Planned(f"{m.name} (trace)", len(convs), len(convs) * cfg.traces_per_question, cached, prompt,
                    cfg.max_tokens)]


def _money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.2f}"


def report(run: RunConfig, overrides: list[str], reply_tokens: int) -> str:
    """The dry run's text for one run."""
    t = run.teacher
    price = t.price()
    where = t.base_url or ("api.openai.com" if t.kind == "openai" else t.kind)
    lines = [f"## `{' '.join(overrides)}`", ""]
    planned = plan(run)
    if not planned:
        return "\n".join([*lines, f"method={run.method.name} asks no teacher.", ""])
    rate = (f"${price.input:g} per million prompt tokens, ${price.output:g} per million completion tokens "
            f"({price.source})" if price else f"no price for {t.model!r} in teacher.prices: costs not estimated")
    lines += [f"teacher: {t.kind} model {t.model!r} at {where}; {rate}", "",
              f"| operation | requests | replies | cached | prompt tokens | completion tokens at most | "
              f"at {reply_tokens:,} per reply | cost at most | cost at {reply_tokens:,} per reply |",
              "|---|---|---|---|---|---|---|---|---|"]
    for p in planned:
        most, typical = p.completion_tokens(), p.completion_tokens(reply_tokens)
        cost = (lambda c: price.cost(p.prompt_tokens, c)) if price else (lambda c: None)
        lines.append(f"| {p.op} | {p.requests:,} | {p.replies:,} | {p.cached:,} | {p.prompt_tokens:,} | {most:,} | "
                     f"{typical:,} | {_money(cost(most))} | {_money(cost(typical))} |")
    return "\n".join([*lines, ""])


def expand(overrides: list[str]) -> list[list[str]]:
    """Each run of a sweep's overrides: `k=a,b` (outside brackets and quotes) gives one run per value."""
    choices = []
    for o in overrides:
        key, eq, value = o.partition("=")
        plain = eq and not re.search(r"[\[\]{}()'\"]", value)
        choices.append([f"{key}={v}" for v in value.split(",")] if plain and "," in value else [o])
    return [list(c) for c in itertools.product(*choices)]


def main(argv: list[str]) -> int:
    from skillexp.config import compose_run
    from skillexp.utils.schema import ConfigError

    ap = argparse.ArgumentParser(prog="skillexp teacher", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("estimate",))
    ap.add_argument("overrides", nargs="+", help="a run's (or a sweep's) overrides, e.g. experiment=... method=...")
    ap.add_argument("--reply-tokens", type=int, default=2000,
                    help="the assumed tokens of one reply, for the expected figures (default 2,000)")
    args = ap.parse_args(argv)
    print("# Teacher requests, estimated (nothing is sent)\n")
    for overrides in expand(args.overrides):
        try:
            run = compose_run(overrides)  # no key or endpoint is needed to count
            print(report(run, overrides, args.reply_tokens))
        except (ConfigError, NotImplementedError) as e:
            print(f"skillexp teacher: {' '.join(overrides)}: {e}", file=sys.stderr)
            return 2
    print(f"Tokens are characters / {CHARS_PER_TOKEN}; completion tokens count the replies not already cached.")
    return 0
