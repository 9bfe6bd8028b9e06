"""`skillexp teacher estimate <a run's overrides>`: what a run's teacher would be asked, and what it would cost,
printed before any request is sent (a dry run: nothing is sampled, trained or sent).

Per operation: requests, replies (requests x n), how many are already in the teacher's answer cache (those cost
nothing), prompt tokens, completion tokens at most (replies x the operation's max_tokens) and at an assumed reply
length (`--reply-tokens`), and the cost of both at the teacher's price (`teacher.prices`). Tokens are counted as
characters / 4 (OpenAI's rule of thumb; no tokenizer of the teacher is at hand): an estimate, not a bill. The
runs themselves record what the endpoint counted (`teacher/openai/*_tokens`, `teacher/cost_usd`).

Every method that asks a teacher is counted: distill and bolt exactly; STAT's steps and its comparison rows
exactly where the config fixes the questions (labelling the skill map; MATH-Augment's and MATH-Hard's answers) and as
upper bounds where earlier answers decide how many there are (judging, drawing, proposing); a continual method
(stat_consel, stat_consyn) as the method it continues followed by its own steps (its labels come from the cache).
A comma list in an override (`method=distill,bolt`) estimates each of its runs, as a sweep would run them.
"""
from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from skillexp.methods.config import STAT_FAMILY, STAT_SEL, STAT_SYN

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


def _tokens(conversation: Sequence[dict[str, str]]) -> int:
    return sum(len(m.get("content", "")) for m in conversation) // CHARS_PER_TOKEN + 4 * len(conversation)


class _Counter:
    """Counts one run's requests as its teacher would send them, the answer cache looked up for exact ones."""

    def __init__(self, run: RunConfig):
        from skillexp.teachers.chat import ChatCache

        t = run.teacher
        self.run, self.model = run, t.model or ""
        self.endpoint = t.base_url.rstrip("/") if t.base_url else None
        cache_dir = Path(t.cache_dir or Path(run.paths.cache_dir) / "teacher")
        self.cache = ChatCache(cache_dir) if t.cache and cache_dir.is_dir() and t.kind == "openai" else None

    def exact(self, op: str, convs: Sequence[Sequence[dict[str, str]]], n: int, temperature: float,
              max_tokens: int, keep_reasoning: bool = False) -> Planned:
        """Requests the config fixes, conversation by conversation (identical ones merge, as the teacher's do)."""
        from skillexp.teachers.chat import chat_request, request_key

        t = self.run.teacher
        params: dict = {"n": n, "temperature": float(temperature) if t.send_temperature else None,
                        "max_tokens": max_tokens, "seed": self.run.seed if temperature > 0 else None}
        if keep_reasoning:
            params["keep_reasoning"] = True
        requests = {}
        for conv in convs:
            request = chat_request(self.model, conv, params, self.endpoint)
            requests[request_key(request)] = (request, conv)
        cached = sum(self.cache is not None and self.cache.get(k, r) is not None for k, (r, _) in requests.items())
        prompt = sum(_tokens(conv) for k, (r, conv) in requests.items()
                     if self.cache is None or self.cache.get(k, r) is None)
        return Planned(op, len(requests), len(requests) * n, cached, prompt, max_tokens)

    def bound(self, op: str, requests: int, example: Sequence[dict[str, str]], n: int, max_tokens: int) -> Planned:
        """At most `requests` requests like `example` (what they hold depends on earlier answers)."""
        return Planned(f"{op} (at most)", requests, requests * n, 0, requests * _tokens(example), max_tokens)


def _stat_family(run: RunConfig, count: _Counter) -> list[Planned]:
    """STAT's steps and its comparison rows: exact where the config fixes the questions (labelling the skill map,
    answering MATH-Augment's and MATH-Hard's questions), upper bounds where earlier answers decide (every validation
    question difficult, every judgement naming `max_missing_skills` skills, every draw a new question)."""
    from skillexp.config import read_catalogue
    from skillexp.methods.stat_baselines import level
    from skillexp.teachers import prompts

    m, t = run.method, run.teacher
    st, b = m.stat, m.baselines
    task = run.task.build()
    train = task.items("train")[: m.num_questions]
    profile = m.continual.profile if m.parent() is not None else None
    asked = profile.build(name="profile", path="method.continual.profile") if profile else task
    val = asked.items(m.continual.split if profile else "val")[: st.num_val_questions]
    difficult = min(st.num_difficult, len(val))
    hint = "" if "answer" in task.answer_type else f" (your {task.answer_type})"
    solve = [prompts.solve_messages(it, hint) for it in train] or [[{"role": "user", "content": ""}]]
    typical_solve = max(solve, key=_tokens)  # the longest, for bounds
    answers = st.answers_per_question if st.answers == "teacher" else 0
    out = []
    if m.name in (*STAT_SEL, *STAT_SYN):
        catalogue = read_catalogue(run)
        out.append(count.exact("label", [prompts.label_messages(it, catalogue.skills(it), st.max_skills)
                                         for it in train], 1, t.label_temperature, t.max_tokens))
        worst = "x" * (CHARS_PER_TOKEN * m.sampling.max_tokens)  # a student solution as long as it may be
        judge = [prompts.judge_messages(it, worst, catalogue.skills(it)) for it in val] or [[]]
        out.append(count.bound("judge", difficult, max(judge, key=_tokens), 1, t.max_tokens))
    pairs = difficult * st.max_missing_skills
    examples = [(it.question, task.reference_solution(it)) for it in train[: st.examples_per_proposal]]
    if m.name in STAT_SEL and answers:
        out.append(count.bound("solve", min(len(train), pairs * st.k), typical_solve, answers, t.max_tokens))
    elif m.name in STAT_SYN:
        out.append(count.bound("propose", pairs, prompts.propose_messages(examples, "x" * 40),
                               st.questions_per_pair, t.max_tokens))
        out.append(count.bound("solve", pairs * st.questions_per_pair, typical_solve, st.solutions_per_question,
                               t.max_tokens))
    elif m.name in ("math_augment", "math_hard") and answers:
        chosen = train if m.name == "math_augment" else [it for it in train if level(it) in set(b.hard_levels)]
        out.append(count.exact("solve", [prompts.solve_messages(it, hint) for it in chosen], answers,
                               t.solve_temperature, t.max_tokens))
    elif m.name == "embed_sel" and answers:
        out.append(count.bound("solve", min(len(train), difficult * b.neighbours), typical_solve, answers,
                               t.max_tokens))
    elif m.name == "embed_syn":
        groups = difficult * b.syn_groups
        out.append(count.bound("propose", groups, prompts.propose_messages(examples[: b.group_size], ""), 1,
                               t.max_tokens))
        out.append(count.bound("solve", groups, typical_solve, st.solutions_per_question, t.max_tokens))
    return out


def plan(run: RunConfig) -> list[Planned]:
    """The teacher operations of `run`'s SFT-data build (see `_stat_family` for what is exact and what a bound)."""
    m = run.method
    if not m.needs_teacher():
        return []
    count = _Counter(run)
    parent = m.parent()
    if parent is not None:  # the method it continues runs first; its skill map's labels are asked once
        first = [replace(p, op=f"{parent.name}: {p.op}") for p in plan(replace(run, method=parent))]
        own = [replace(p, op=f"{p.op} (cached by {parent.name})", cached=p.requests, prompt_tokens=0)
               if p.op == "label" and run.teacher.cache else p for p in _stat_family(run, count)]
        return first + own
    if m.name in STAT_FAMILY:
        return _stat_family(run, count)
    from skillexp.config import read_examples
    from skillexp.methods.distill import conversations

    task = run.task.build()
    convs = conversations(m.name, read_examples(run) if m.name == "bolt" else None, task,
                          task.items("train")[: m.num_questions])
    cfg = m.distill
    return [count.exact(f"{m.name} (trace)", convs, cfg.traces_per_question, cfg.temperature, cfg.max_tokens,
                        keep_reasoning=True)]


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
            f"({price.source})" if price else "not an API: nothing is charged" if t.kind != "openai"
            else f"no price for {t.model!r} in teacher.prices: costs not estimated")
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
            if run.paths.data_dir:  # where its tasks read prepared hub tables, as a run reads them
                os.environ["SKILLEXP_DATA_DIR"] = str(Path(run.paths.data_dir).resolve())
            print(report(run, overrides, args.reply_tokens))
        except (ConfigError, ValueError, FileNotFoundError) as e:
            print(f"skillexp teacher: {' '.join(overrides)}: {e}", file=sys.stderr)
            return 2
    print(f"Tokens are characters / {CHARS_PER_TOKEN}; completion tokens count the replies not already cached. "
          "`(at most)`: how many depends on earlier answers (how many questions are difficult, how many skills a "
          "judgement names); the bound takes the most the config allows, with the longest prompt.")
    return 0
