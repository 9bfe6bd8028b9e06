"""The Task protocol: one object builds items, writes prompts, extracts answers and scores them.

As in nanochat, `score` is both the eval metric and (later) the RL reward, so the two can never drift apart.
Tasks are pure Python over strings: no torch, no generation, no training code may be imported here.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from skillexp.tasks.answer import ANSWER_FORMATS, last_tag
from skillexp.tasks.prompts import HINT_SUFFIX, HINT_VARIANTS, build_messages, is_hint, with_hint
from skillexp.tasks.sources import Source, source_file

SPLITS = ("train", "rl", "val", "test")
SKILL_CATALOGUES = Path(__file__).resolve().parents[1] / "data" / "skills"  # the catalogues that ship


@dataclass(frozen=True)
class Item:
    """One problem. `answer` is the gold answer as a canonical string; `meta` holds task specifics."""

    id: str
    question: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A task variant, e.g. `countdown_4`, built from a validated config dataclass.

    Subclasses implement `_build_splits`, `check` and `reference_solution`; items are built lazily once and are
    not pickled, so sending a task to scoring workers stays cheap. The hooks `problem_key`, `with_gold`,
    `read_question` and `checkable` (and `skill_catalogue`) tell data-building methods such as STAT what a task's
    items mean, so those methods need not know any task by name; the defaults suit free-form questions.
    """

    answer_type: str = "answer"  # what the prompts ask for: "give your resulting <answer_type> ..."
    answer_format: str = "tag"  # where the prompts ask for it and `extract` reads it (tasks/answer.py)
    config_path: str = "task"  # where the config sets it ("task", "eval.variants.gsm8k"): messages name its keys
    # the skill catalogue ({"subjects": {subject: [skill, ...]}}) STAT uses by default; None when none ships
    skill_catalogue: ClassVar[Path | None] = None

    def __init__(self, name: str, lenient: bool = False):
        self.name = name  # the variant name used in metric keys ("countdown_4/mean@4")
        self.lenient = lenient  # fall back to a task-specific guess when the <answer> tag is missing
        self._splits: dict[str, list[Item]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_splits": None}

    @abstractmethod
    def _build_splits(self) -> dict[str, list[Item]]:
        """All splits at once, so that they are disjoint by construction."""

    def check_source(self) -> None:
        """Start-up check of the data the task reads: a task that reads files (`data_files`) reads them whole now,
        every row checked, raising ValueError or FileNotFoundError (MissingData for an unprepared hub dataset) with
        the file, the line and the fix. Generated tasks have nothing to read."""
        if self.data_files():
            self._splits = self._build_splits()

    def sources(self) -> list[Source]:
        """The hub datasets and named local files the items are read from (what `skillexp data prepare` fetches);
        none for generated tasks and shipped sets."""
        return []

    def data_files(self) -> list[Path]:
        """Local files the items are read from (their content belongs in a stage's cache key): each source's file
        (a hub dataset's prepared one); none for generated tasks."""
        return [source_file(s.path, s.hf_config, s.hf_split, None) for s in self.sources()]

    def items(self, split: str) -> list[Item]:
        """Items of one split in SPLITS; deterministic for a given config."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        if self._splits is None:
            self._splits = self._build_splits()
        return self._splits[split]

    def messages(self, item: Item, variant: str = "original") -> list[dict[str, str]]:
        """Chat messages that pose `item`, under one of SkillFactory's prompt variants, asking for the answer
        where `extract` reads it; a `<variant>_hint` (prompts.HINT_VARIANTS, for sampling solutions only) adds
        the gold answer as a hint."""
        if not is_hint(variant):
            return build_messages(item.question, self.answer_type, variant, ANSWER_FORMATS[self.answer_format])
        if variant not in HINT_VARIANTS:
            raise ValueError(f"unknown prompt variant {variant!r}; the hint variants are {list(HINT_VARIANTS)}")
        base = variant.removesuffix(HINT_SUFFIX)
        messages = build_messages(item.question, self.answer_type, base, ANSWER_FORMATS[self.answer_format])
        return with_hint(messages, item.answer, self.answer_type)

    def extract(self, completion: str) -> str | None:
        """The final answer where the prompt asked for it (the last `<answer>` span, or `\\boxed{}`), or with
        `lenient` a task-specific fallback; None: no answer found."""
        found = ANSWER_FORMATS[self.answer_format].read(completion)
        if found is not None or not self.lenient:
            return found
        return self._lenient_extract(completion)

    def tag_answer(self, completion: str) -> str | None:
        """The completion with its final answer in `<answer>` tags, or None when it has none. Tagged completions
        come back unchanged; with `lenient`, an untagged one gets its fallback answer appended in tags, so SFT data
        built from a model that never writes tags (SmolLM2) still teaches the answer format."""
        if last_tag(completion) is not None:
            return completion
        answer = self._lenient_extract(completion) if self.lenient else None
        return None if answer is None else f"{completion.rstrip()}\n<answer>{answer}</answer>"

    def _lenient_extract(self, completion: str) -> str | None:
        return None

    @abstractmethod
    def check(self, item: Item, answer: str) -> bool:
        """Is the extracted `answer` correct for `item`? Bounded in time and memory; never raises."""

    def score(self, item: Item, completion: str) -> float:
        """Reward in [0, 1]: 1 when the extracted answer is correct."""
        answer = self.extract(completion)
        return float(answer is not None and self.check(item, answer))

    @abstractmethod
    def reference_solution(self, item: Item) -> str:
        """A correct completion in this task's answer format (`method=sft` trains on these)."""

    def problem_key(self, item: Item) -> str:
        """Two items with the same key pose the same problem, so synthetic data can be kept clear of eval
        questions and of its own repeats. Default: the question lower-cased, whitespace collapsed."""
        return " ".join(item.question.lower().split())

    def with_gold(self, item: Item, answer: str) -> Item | None:
        """`item` with the extracted `answer` standing in as its gold answer, or None when `answer` cannot be one;
        checking another answer against the result tells whether the two agree. Default: any answer can."""
        return replace(item, answer=answer)

    def read_question(self, item: Item) -> Item:
        """A proposed question (free text, e.g. from an LLM teacher) with what `check` needs read back from its
        wording into `meta`; unchanged when nothing can be read. Default: unchanged, the question alone suffices."""
        return item

    def checkable(self, item: Item) -> bool:
        """Can `check` verify a solution of `item` on its own, rather than solutions being compared with each other
        for agreement? Default: when `item` has a gold answer."""
        return bool(item.answer)


def partition(rows: list[Any], sizes: dict[str, int]) -> dict[str, list[Any]]:
    """Cut `rows` into splits in the order test, val, rl, train, so that growing the training split never
    changes the test set. A size of -1 takes all remaining rows."""
    out, start = {}, 0
    for split in ("test", "val", "rl", "train"):
        n = sizes[split]
        end = len(rows) if n < 0 else start + n
        out[split] = rows[start:end]
        start = end
    return out
