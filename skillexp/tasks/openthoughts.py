r"""OpenThoughts3 questions as a math task: SkillFactory's OpenThoughts setting (paper §4, App. E.4-E.5; Table 2).

A row of `open-thoughts/OpenThoughts3-1.2M` holds `conversations`, a list of turns `{"from": "human" | "gpt",
"value": ...}` (`{"role": "user" | "assistant", "content": ...}` is read too), and `domain`, `source`,
`difficulty`. The question is the first human turn; the gold answer is the last `\boxed{...}` after the last
`</think>` of the gpt turn that follows it (QwQ-32B's trace). A row is dropped, and counted by reason in `dropped`,
when its trace has no `</think>`, no boxed span after it, several boxed spans there whose answers differ after a
light textual normalisation (`normalise`: spaces, `\left`/`\right`, `\dfrac`; not math-verify, so `0.5` and
`\frac{1}{2}` differ), an unclosed or over-long span, or text over the caps below (nothing longer is scanned). Each
question is asked 16 times in OpenThoughts3 (one QwQ trace each); the first row of a question that passes is kept.

The whole gpt turn, `<think>` block and all, is kept as `meta["solution"]`: `method=sft` trains on it (with the
answer in `<answer>` tags after it), which is the paper's QwQ-distillation baseline. Grading is the math task's
(math-verify on the `<answer>` span, `answer_format` and `lenient` as there), and so are the splits: items ordered
by a hash of the question and cut test, val, rl, train (`num_*`).

The table is read one row at a time (`sources.iter_rows`): the full dataset is ~60 GB as JSON lines, and only the
kept questions stay in memory. All parsing is bounded: string searches and one left-to-right brace scan over at
most MAX_FINAL_CHARS, never a regex that can backtrack, never eval.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from skillexp.tasks.answer import BOXED_OPEN, MAX_ANSWER_CHARS, closing_brace
from skillexp.tasks.base import Item, partition
from skillexp.tasks.math import MathTask
from skillexp.tasks.sources import Source, iter_rows, source_file
from skillexp.utils.schema import AT_LEAST_1, Range

log = logging.getLogger(__name__)

THINK_CLOSE = "</think>"
MAX_QUESTION_CHARS = 20_000  # a longer "question" is not one of OpenThoughts' math problems: dropped unread
MAX_SOLUTION_CHARS = 400_000  # QwQ traces run to ~30k tokens; a longer gpt turn is dropped unscanned
MAX_FINAL_CHARS = 20_000  # the answer after </think> is a short summary; a longer one is dropped unscanned
_NOISE = re.compile(r"\\left|\\right|\\[,;:! ]|\s+")  # spacing commands, \left/\right, whitespace
HUMAN, GPT = ("human", "user"), ("gpt", "assistant")


@dataclass
class OpenThoughtsConfig:
    path: str = "open-thoughts/OpenThoughts3-1.2M"  # a (prepared) hub dataset name, or a local .jsonl / .parquet
    hf_config: str | None = None
    hf_split: str = "train"  # the dataset's only split; a `datasets` slice ("train[:200000]") prepares a part
    conversations_field: str = "conversations"  # the turns: [{from, value}] (or [{role, content}])
    domains: list[str] | None = None  # keep rows whose `domain` is one of these (math, code, science); null: all
    answer_format: Literal["tag", "boxed"] = "tag"  # where the model's final answer is read (the math task's)
    # splits by question hash, cut in the order test, val, rl, train (the math task's); -1 = all remaining
    num_test: Annotated[int, Range(-1)] = 0  # the OpenThoughts setting evaluates on other benchmarks
    num_val: Annotated[int, Range(-1)] = 200
    num_rl: Annotated[int, Range(-1)] = 10_000  # paper: RL on 10k questions held out from the SFT ones
    num_train: Annotated[int, Range(-1)] = -1  # SFT questions: method.num_questions of them (paper: 1k or 10k)
    parsing_timeout_s: Annotated[int, AT_LEAST_1] = 3
    verify_timeout_s: Annotated[int, AT_LEAST_1] = 3
    lenient: bool = False  # with answer_format=tag, fall back to the last \boxed{} when the tag is missing


def normalise(answer: str) -> str:
    r"""`answer` compared as text: spacing commands, `\left`/`\right` and whitespace removed, `\dfrac`/`\tfrac` as
    `\frac`, surrounding `$` and a final period dropped. Callers bound its length (MAX_ANSWER_CHARS)."""
    text = _NOISE.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".").strip("$").rstrip(".")


def boxed_spans(text: str, max_span: int = MAX_ANSWER_CHARS) -> list[str] | None:
    r"""The contents of every `\boxed{...}` in `text`, left to right (a boxed inside another is part of the outer
    one), or None when one is not closed within `max_span` characters. Linear in len(text): each character is
    looked at once, whatever the input."""
    spans, pos = [], 0
    while (start := BOXED_OPEN.search(text, pos)) is not None:
        end = closing_brace(text, start.end(), max_span)
        if end is None:
            return None
        spans.append(text[start.end():end].strip())
        pos = end + 1
    return spans


def gold_answer(solution: str) -> tuple[str | None, str]:
    """(the gold answer, "ok") from a QwQ trace, or (None, why it has none): the last boxed span after the last
    `</think>`, provided every boxed span there agrees with it (`normalise`)."""
    if len(solution) > MAX_SOLUTION_CHARS:
        return None, "too_long"
    cut = solution.rfind(THINK_CLOSE)
    if cut < 0:
        return None, "no_think_end"
    final = solution[cut + len(THINK_CLOSE):]
    if len(final) > MAX_FINAL_CHARS:
        return None, "too_long"
    spans = boxed_spans(final)
    if spans is None:
        return None, "unclosed_boxed"
    spans = [s for s in spans if s]
    if not spans:
        return None, "no_boxed"
    if len({normalise(s) for s in spans}) > 1:
        return None, "differing_boxed"
    return spans[-1], "ok"


def _turn(turn: Any) -> tuple[str | None, Any]:
    """(speaker, text) of one turn in either shape, lower-cased speaker; (None, None) when it is neither."""
    if not isinstance(turn, dict):
        return None, None
    speaker = turn.get("from", turn.get("role"))
    return (speaker.lower() if isinstance(speaker, str) else None), turn.get("value", turn.get("content"))


def question_and_trace(turns: list[Any]) -> tuple[str | None, str | None]:
    """The first human turn's text and the text of the first gpt turn after it (None where missing or not text)."""
    question = None
    for turn in turns:
        speaker, text = _turn(turn)
        if question is None and speaker in HUMAN:
            if not isinstance(text, str):
                return None, None
            question = text
        elif question is not None and speaker in GPT:
            return question, text if isinstance(text, str) else None
    return question, None


class OpenThoughtsTask(MathTask):
    """The math task over OpenThoughts3 rows: its grading, answer format, reference solutions and skill catalogue;
    its own reading of the rows."""

    def __init__(self, cfg: OpenThoughtsConfig, name: str):
        super().__init__(cfg, name)  # type: ignore[arg-type]  # MathTask reads only what both configs hold
        self.cfg: OpenThoughtsConfig = cfg  # type: ignore[assignment]
        self.dropped: dict[str, int] = {}  # rows left out by reason, filled when the items are built

    def sources(self) -> list[Source]:
        return [Source(self.cfg.path, self.cfg.hf_config, self.cfg.hf_split)]

    def data_files(self) -> list[Path]:
        return [source_file(self.cfg.path, self.cfg.hf_config, self.cfg.hf_split, None)]

    def _item(self, row: dict[str, Any], where: str, counts: Counter[str]) -> Item | None:
        c = self.cfg
        turns = row.get(c.conversations_field)
        if not isinstance(turns, list):
            raise ValueError(f"{where}: the row has no list of turns in {c.conversations_field!r} (its fields: "
                             f"{sorted(row)[:12]}); set {self.config_path}.conversations_field to the field that "
                             f"holds them, or fix the row.")
        if c.domains is not None and row.get("domain") not in c.domains:
            counts["other_domain"] += 1
            return None
        question, trace = question_and_trace(turns)
        question = question.strip() if question else None
        if not question or trace is None:
            counts["no_question_or_trace"] += 1
            return None
        if len(question) > MAX_QUESTION_CHARS:
            counts["too_long"] += 1
            return None
        gold, why = gold_answer(trace)
        if gold is None:
            counts[why] += 1
            return None
        digest = hashlib.sha1(question.encode()).hexdigest()[:12]
        meta = {"solution": trace, "domain": row.get("domain"), "source": row.get("source"),
                "difficulty": row.get("difficulty")}
        return Item(id=f"{self.name}-{digest}", question=question, answer=gold, meta=meta)

    def _read_items(self) -> list[Item]:
        """The table's questions with a gold answer, one item per question, in an order that does not depend on the
        file's; `dropped` counts the rows left out."""
        c = self.cfg
        counts: Counter[str] = Counter()
        items: dict[str, Item] = {}
        rows = 0
        for where, row in iter_rows(c.path, c.hf_config, c.hf_split, None, "the openthoughts task"):
            rows += 1
            item = self._item(row, where, counts)
            if item is None:
                continue
            if item.id in items:
                counts["repeated_question"] += 1
                continue
            items[item.id] = item
        self.dropped = dict(counts)
        log.info("%s: %d questions with a gold answer from %d rows; left out: %s", self.name, len(items), rows,
                 dict(sorted(counts.items())) or "none")
        if not items:
            raise ValueError(f"the openthoughts task: none of the {rows} rows of {c.path} ({c.hf_split}) has a "
                             f"question and a gold answer after </think> (left out: {dict(counts)}).")
        return sorted(items.values(), key=lambda it: it.id)

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        sizes = {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train}
        return partition(self._read_items(), sizes)
