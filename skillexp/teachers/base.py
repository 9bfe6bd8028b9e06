"""What STAT asks of a teacher, as one interface with three kinds of backend (an OpenAI-compatible API, a local
model on our generation backend, a programmatic oracle for synthetic tasks).

Every operation is batched (a list in, a list out, same order) so API backends can run requests concurrently and
local backends can batch them on the engine. Teacher output is untrusted: a result the teacher could not produce
in a usable form is `None` (or an empty list) and is counted in `Teacher.counts`, never raised.
"""
from __future__ import annotations

import difflib
import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from skillexp.tasks.base import Item

DEFAULT_SUBJECT = "default"


@dataclass
class SkillCatalogue:
    """Skill names per subject (MATH: the paper's per-subject lists; Countdown: one list). A question's subject is
    `item.meta["subject"]` when the catalogue has it, else DEFAULT_SUBJECT (or the only subject there is)."""

    subjects: dict[str, list[str]]

    def __post_init__(self) -> None:
        if not self.subjects or not all(self.subjects.values()):
            raise ValueError("a skill catalogue needs at least one subject with at least one skill")
        # subjects are looked up by key(item subject), so they are stored by key however they were given
        self.subjects = {self.key(s): list(names) for s, names in self.subjects.items()}
        self._index = {s: {self.key(n): n for n in names} for s, names in self.subjects.items()}

    @staticmethod
    def key(name: str) -> str:
        """The form names are compared in: lower case, words joined by single underscores."""
        return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")

    @classmethod
    def load(cls, path: str | Path) -> SkillCatalogue:
        """A JSON file `{"subjects": {subject: [skill, ...]}}` (extra top-level keys such as "source" are ignored),
        or `{subject: [skill, ...]}`."""
        shape = '{"subjects": {subject: [skill, ...]}}'
        if not Path(path).is_file():
            raise FileNotFoundError(f"skill catalogue {path} does not exist: give a JSON file {shape}")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"skill catalogue {path} is not UTF-8 text (byte {e.start}): give a JSON file {shape}")
        except json.JSONDecodeError as e:
            raise ValueError(f"skill catalogue {path}, line {e.lineno}: not JSON ({e.msg}): give a JSON file {shape}")
        subjects = data.get("subjects", data) if isinstance(data, dict) else data
        if not isinstance(subjects, dict) or not all(isinstance(v, list) for v in subjects.values()):
            raise ValueError(f"skill catalogue {path}: expected {shape}")
        try:
            return cls({str(s): [str(n) for n in v] for s, v in subjects.items()})
        except ValueError as e:
            raise ValueError(f"skill catalogue {path}: {e}") from e

    def subject(self, item: Item) -> str:
        subject = self.key(str(item.meta.get("subject", "")))
        if subject in self.subjects:
            return subject
        if DEFAULT_SUBJECT in self.subjects:
            return DEFAULT_SUBJECT
        if len(self.subjects) == 1:
            return next(iter(self.subjects))
        raise KeyError(f"question {item.id} has subject {item.meta.get('subject')!r}, which the catalogue lacks "
                       f"(subjects: {sorted(self.subjects)}); add it or a {DEFAULT_SUBJECT!r} list")

    def skills(self, item: Item) -> list[str]:
        return self.subjects[self.subject(item)]

    def normalise(self, name: str, item: Item, cutoff: float = 0.85) -> str | None:
        """The catalogue's spelling of `name` for `item`'s subject: exact after case/spacing/underscore folding,
        else the closest name above `cutoff` similarity, else None (out of catalogue)."""
        index = self._index[self.subject(item)]
        k = self.key(name[:200])
        if k in index:
            return index[k]
        close = difflib.get_close_matches(k, list(index), n=1, cutoff=cutoff)
        return index[close[0]] if close else None


@dataclass
class Judgement:
    """The teacher's verdict on a student's solution and the skills the student should improve."""

    correct: bool | None  # None: the teacher gave no readable verdict
    skills: list[str]  # catalogue names, normalised, deduplicated, in the teacher's order
    reason: str = ""


@dataclass
class Proposal:
    """A new question meant to stress `skill`. `item.answer` is empty unless the teacher knows it (an oracle)."""

    item: Item
    skill: str
    draft: str = ""


class TeacherError(RuntimeError):
    """The teacher cannot do its job (its endpoint refuses us, or too many of its requests failed); the message
    says what failed and what to fix."""


class TeacherFailure(TeacherError):
    """Too many teacher requests failed (connection refused, time-outs, HTTP errors) for a step to go on: a failed
    request is not an answer, so nothing of the step is saved, and its rerun asks again."""


class Teacher(ABC):
    """STAT's teacher. `counts` tallies what happened to teacher outputs (parsed, normalised, dropped...)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @abstractmethod
    def label_skills(self, items: Sequence[Item], catalogue: SkillCatalogue, max_skills: int = 5) -> list[list[str]]:
        """For each question, up to `max_skills` catalogue skills needed to solve it (empty when unusable)."""

    @abstractmethod
    def judge(self, items: Sequence[Item], solutions: Sequence[str], catalogue: SkillCatalogue) -> list[Judgement]:
        """For each (question, student solution): correct or not, and the skills the student should improve."""

    @abstractmethod
    def propose(self, examples: Sequence[Sequence[Item]], skills: Sequence[str], n: int = 1,
                seed: int = 0) -> list[list[Proposal]]:
        """For each (three example questions, skill): up to `n` new questions that stress the skill."""

    @abstractmethod
    def solve(self, items: Sequence[Item], n: int = 1, seed: int = 0) -> list[list[str]]:
        """For each question, `n` solutions in the task's answer format (the final answer in <answer> tags)."""

    @abstractmethod
    def complete(self, conversations: Sequence[Sequence[dict[str, str]]], n: int = 1, seed: int = 0,
                 temperature: float = 0.6, max_tokens: int = 16384, op: str = "trace") -> list[list[str]]:
        """For each conversation (a question as the student is asked it, after in-context examples for BOLT), `n`
        whole replies, the reasoning kept: a model that thinks apart has its thinking put first as <think>...</think>
        (the distillation methods train on it)."""

    def metrics(self, prefix: str = "teacher") -> dict[str, float]:
        return {f"{prefix}/{k}": float(v) for k, v in sorted(self.counts.items())}

    @property
    def failed_requests(self) -> int:
        """Requests that got no answer so far (tolerated ones: more stop the step with `TeacherFailure`)."""
        return sum(n for k, n in self.counts.items() if k.endswith("/no_response"))

    def close(self) -> None:
        """Release clients, engines and processes."""


class LazyTeacher(Teacher):
    """The run's teacher, built on first use: a run whose teacher steps are all on disk starts no client, engine or
    model, and the student's engine is closed before a local teacher loads."""

    def __init__(self, factory: Callable[[], Teacher]):
        super().__init__()
        self._factory = factory
        self._teacher: Teacher | None = None

    @property
    def inner(self) -> Teacher:
        if self._teacher is None:
            self._teacher = self._factory()
        return self._teacher

    def label_skills(self, items: Sequence[Item], catalogue: SkillCatalogue, max_skills: int = 5) -> list[list[str]]:
        return self.inner.label_skills(items, catalogue, max_skills)

    def judge(self, items: Sequence[Item], solutions: Sequence[str], catalogue: SkillCatalogue) -> list[Judgement]:
        return self.inner.judge(items, solutions, catalogue)

    def propose(self, examples: Sequence[Sequence[Item]], skills: Sequence[str], n: int = 1,
                seed: int = 0) -> list[list[Proposal]]:
        return self.inner.propose(examples, skills, n, seed)

    def solve(self, items: Sequence[Item], n: int = 1, seed: int = 0) -> list[list[str]]:
        return self.inner.solve(items, n, seed)

    def complete(self, conversations: Sequence[Sequence[dict[str, str]]], n: int = 1, seed: int = 0,
                 temperature: float = 0.6, max_tokens: int = 16384, op: str = "trace") -> list[list[str]]:
        return self.inner.complete(conversations, n, seed, temperature, max_tokens, op)

    def metrics(self, prefix: str = "teacher") -> dict[str, float]:
        return {} if self._teacher is None else self._teacher.metrics(prefix)

    @property
    def failed_requests(self) -> int:
        return 0 if self._teacher is None else self._teacher.failed_requests

    def close(self) -> None:
        if self._teacher is not None:
            self._teacher.close()
