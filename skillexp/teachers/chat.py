"""A teacher made of a chat model: STAT's four operations as prompts (`prompts.py`) sent through a small chat
backend interface, so an API model and a local checkpoint share prompts, parsing, caching and counting.

A backend implements only `_generate` (send conversations, report each result as it arrives); `ChatBackend.chat`
adds the on-disk cache (hits never reach the backend, results are stored the moment they arrive) and merges
identical requests within a call.

The cache (`ChatCache`) is one JSON file per request, named by the SHA-256 of the request (model, messages,
sampling parameters including n and seed) and written atomically (`utils.io`): a run killed mid-way keeps every
answer it had received, a reader never sees half a file, and concurrent processes (runs sharing
`paths.cache_dir`, nodes on a network filesystem) can only both write the same valid answer. Each file also holds
its request, compared on read, so a hash collision or a hand-edited file is a miss rather than a wrong answer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from skillexp.tasks.base import Item, Task
from skillexp.teachers import prompts
from skillexp.teachers.base import Judgement, Proposal, SkillCatalogue, Teacher, TeacherFailure
from skillexp.teachers.config import TeacherConfig
from skillexp.utils.io import atomic_write_text

Conversation = Sequence[dict[str, str]]
OnResult = Callable[[int, "list[str] | None"], None]


def chat_request(model: str, messages: Sequence[dict[str, str]], params: dict[str, Any],
                 endpoint: str | None = None) -> dict[str, Any]:
    """What identifies a completion: the model name, the messages, the sampling parameters, and the endpoint when
    it is not the model's own (`teacher.base_url`): two servers that serve the same model name may serve different
    weights, so they never share answers (a server moved to another port is another endpoint: keep its URL stable)."""
    request = {"model": model, "messages": [dict(m) for m in messages], **params}
    return {**request, "endpoint": endpoint} if endpoint is not None else request


def request_key(request: dict[str, Any]) -> str:
    blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ChatCache:
    """Completions on disk by request key (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, request: dict[str, Any]) -> list[str] | None:
        """The cached completions for `request`, or None (absent, unreadable, or stored for another request)."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("request") != request or not isinstance(entry.get("texts"), list):
            return None
        return [str(t) for t in entry["texts"]]

    def put(self, key: str, request: dict[str, Any], texts: Sequence[str]) -> None:
        atomic_write_text(self._path(key), json.dumps({"request": request, "texts": list(texts)}, ensure_ascii=False))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json"))


class ChatBackend(ABC):
    """`chat(conversations, n, temperature, max_tokens, seed) -> list[list[str]]`: n completions per conversation,
    in order; an empty list where the request failed (counted `chat/failed`), never an exception for a flake."""

    def __init__(self, model_id: str, cache_dir: str | Path | None = None, endpoint: str | None = None):
        self.model_id = model_id  # what the cache keys on: the served model name, or the local checkpoint
        self.endpoint = endpoint  # and the server that answers for it, when the name alone does not say
        self.cache = ChatCache(cache_dir) if cache_dir is not None else None
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # why requests failed for good: "connection refused", "HTTP 503"

    def chat(self, conversations: Sequence[Conversation], n: int = 1, temperature: float | None = 0.0,
             max_tokens: int = 512, seed: int | None = None, keep_reasoning: bool = False) -> list[list[str]]:
        """`temperature` None: the endpoint's default. `keep_reasoning`: a reasoning model's thinking stays in
        each text as a leading <think> block (openai_client.with_reasoning)."""
        params: dict[str, Any] = {"n": n, "temperature": None if temperature is None else float(temperature),
                                  "max_tokens": max_tokens, "seed": seed}
        if keep_reasoning:  # only then in the request (and its cache key): the other operations' keys stay as they were
            params["keep_reasoning"] = True
        out: list[list[str]] = [[] for _ in conversations]
        positions: dict[str, list[int]] = {}
        requests: dict[str, dict[str, Any]] = {}
        for i, conv in enumerate(conversations):
            request = chat_request(self.model_id, conv, params, self.endpoint)
            key = request_key(request)
            positions.setdefault(key, []).append(i)
            requests[key] = request
        if len(positions) < len(conversations):
            self.counts["chat/deduplicated"] += len(conversations) - len(positions)
        todo = []
        for key, request in requests.items():
            hit = self.cache.get(key, request) if self.cache is not None else None
            if hit is None:
                todo.append(key)
                continue
            self.counts["chat/cache_hits"] += 1
            for i in positions[key]:
                out[i] = list(hit)

        def on_result(j: int, texts: list[str] | None) -> None:
            if texts is None:
                self.counts["chat/failed"] += 1
                return
            self.counts["chat/completed"] += 1
            if self.cache is not None:
                self.cache.put(todo[j], requests[todo[j]], texts)
            for i in positions[todo[j]]:
                out[i] = list(texts)

        if todo:
            self._generate([requests[k]["messages"] for k in todo], params, on_result)
        return out

    @abstractmethod
    def _generate(self, conversations: Sequence[Conversation], params: dict[str, Any], on_result: OnResult) -> None:
        """Send every conversation with `params` (n, temperature, max_tokens, seed) and call `on_result(j, texts)`
        from the calling thread as each one finishes (texts None: failed for good)."""

    def close(self) -> None:
        """Release clients and engines."""


class LLMTeacher(Teacher):
    """STAT's teacher on any chat backend. Greedy operations (labelling, judging) send no seed, so their cache
    entries are shared by runs with different seeds."""

    def __init__(self, backend: ChatBackend, task: Task, cfg: TeacherConfig):
        super().__init__()
        self.backend, self.task, self.cfg = backend, task, cfg
        self.counts = backend.counts  # one tally: request outcomes (chat/..., http/...) next to parse outcomes

    def _chat(self, conversations: Sequence[Conversation], op: str, temperature: float, n: int = 1,
              seed: int | None = None, max_tokens: int | None = None, keep_reasoning: bool = False) -> list[list[str]]:
        before = Counter(self.backend.failures)
        outs = self.backend.chat(conversations, n=n, temperature=temperature if self.cfg.send_temperature else None,
                                 max_tokens=max_tokens or self.cfg.max_tokens,
                                 seed=seed if temperature > 0 else None, keep_reasoning=keep_reasoning)
        failed = sum(not o for o in outs)
        if failed:
            self.counts[f"{op}/no_response"] += failed
        if failed > self.cfg.max_failed_fraction * len(outs):
            why = self.backend.failures - before
            reasons = ", ".join(f"{n} {reason}" for reason, n in why.most_common()) or "no reason given"
            raise TeacherFailure(
                f"the teacher failed {failed} of {len(outs)} '{op}' requests ({reasons}; after {self.cfg.max_retries} "
                f"retries each) at {self.backend!r}, more than teacher.max_failed_fraction="
                f"{self.cfg.max_failed_fraction:g} allows. Nothing of this step was saved: fix the endpoint and "
                f"rerun; the {len(outs) - failed} answers received are cached, so only the failed requests are sent.")
        return outs

    def label_skills(self, items: Sequence[Item], catalogue: SkillCatalogue, max_skills: int = 5) -> list[list[str]]:
        convs = [prompts.label_messages(it, catalogue.skills(it), max_skills) for it in items]
        outs = self._chat(convs, "label", self.cfg.label_temperature)
        return [(prompts.parse_skills(out[0], it, catalogue, max_skills, "label", self.counts) or []) if out else []
                for it, out in zip(items, outs)]

    def judge(self, items: Sequence[Item], solutions: Sequence[str], catalogue: SkillCatalogue) -> list[Judgement]:
        convs = [prompts.judge_messages(it, sol, catalogue.skills(it)) for it, sol in zip(items, solutions)]
        outs = self._chat(convs, "judge", self.cfg.judge_temperature)
        return [prompts.parse_judgement(out[0], it, catalogue, self.counts) if out else Judgement(None, [])
                for it, out in zip(items, outs)]

    def _example_solution(self, item: Item) -> str:
        solution = item.meta.get("solution")
        return solution if isinstance(solution, str) and solution else self.task.reference_solution(item)

    def propose(self, examples: Sequence[Sequence[Item]], skills: Sequence[str], n: int = 1,
                seed: int = 0) -> list[list[Proposal]]:
        convs = [prompts.propose_messages([(e.question, self._example_solution(e)) for e in ex], skill)
                 for ex, skill in zip(examples, skills)]
        outs = self._chat(convs, "propose", self.cfg.propose_temperature, n=n, seed=seed)
        result = []
        for ex, skill, out in zip(examples, skills, outs):
            seen = {SkillCatalogue.key(e.question) for e in ex}
            proposals = []
            for text in out:
                parsed = prompts.parse_question(text, self.counts)
                if parsed is None:
                    continue
                question, draft = parsed
                if SkillCatalogue.key(question) in seen:  # a repeat, or a copy of an example
                    self.counts["propose/duplicate_dropped"] += 1
                    continue
                seen.add(SkillCatalogue.key(question))
                meta = {"skill": skill, "subject": ex[0].meta.get("subject") if ex else None,
                        "examples": [e.id for e in ex]}
                proposals.append(Proposal(Item(prompts.question_id(question), question, "", meta), skill, draft))
            result.append(proposals)
        return result

    def solve(self, items: Sequence[Item], n: int = 1, seed: int = 0) -> list[list[str]]:
        hint = "" if "answer" in self.task.answer_type else f" (your {self.task.answer_type})"
        convs = [prompts.solve_messages(it, hint) for it in items]
        outs = self._chat(convs, "solve", self.cfg.solve_temperature, n=n, seed=seed)
        result = []
        for item, out in zip(items, outs):
            solutions = []
            for text in out:
                answer = prompts.parse_answer(text, self.counts)
                if answer is None:
                    continue
                if self.task.extract(text) != answer:  # e.g. only \boxed{}: restate it in the task's own format
                    text = f"{text.rstrip()}\n{self.task.reference_solution(dataclasses.replace(item, answer=answer))}"
                    self.counts["solve/reformatted"] += 1
                solutions.append(text)
            result.append(solutions)
        return result

    def complete(self, conversations: Sequence[Conversation], n: int = 1, seed: int = 0, temperature: float = 0.6,
                 max_tokens: int = 16384, op: str = "trace") -> list[list[str]]:
        return self._chat(conversations, op, temperature, n=n, seed=seed, max_tokens=max_tokens, keep_reasoning=True)

    def metrics(self, prefix: str = "teacher") -> dict[str, float]:
        """The tallies, and the metered use: requests sent (retries included), tokens the endpoint counted, and
        their estimated cost at `teacher.price` (answers from the cache cost nothing)."""
        out = super().metrics(prefix)
        if (price := self.cfg.price()) is not None:
            out[f"{prefix}/cost_usd"] = price.cost(self.counts.get("openai/prompt_tokens", 0),
                                                   self.counts.get("openai/completion_tokens", 0))
        return out

    def close(self) -> None:
        self.backend.close()
