"""Multiple-choice questions answered with one letter: CommonsenseQA and GPQA.

Rows come through `sources.read_rows`. `format` says how a row is read:
- `commonsense_qa` (hub `tau/commonsense_qa`, split `validation`: its `test` split has no answers): `question`,
  `choices: {"label": ["A", ...], "text": [...]}`, `answerKey`.
- `gpqa` (gated on the hub, so usually a local file): `Question`, `Correct Answer`, `Incorrect Answer 1..3`. The four
  options are shuffled per question with `data_seed`, so the correct letter does not depend on the file.
A malformed row (missing field, empty option, answer key not among the labels, the correct text among the wrong
ones) fails when the task is read, naming the row. Items are ordered by a hash of the question and its options
(not of the shuffle) and cut test, val, rl, train; by default every row is a test item.

The prompt lists the choices as `A. text` lines. The answer is the last `<answer>` span, read as one choice letter:
`B`, `b`, `(B)`, `[B]`, `B.`, `B)`, `B:`, `**B**`, `\\boxed{B}`, and a letter followed by its own choice's text
(`B) bank`, compared case- and space-insensitively). Refused: two letters (`B, C`, `B or C`), a letter that is not one
of the item's choices, a letter followed by any other text (`B) no wait C`), the choice text alone (the prompt asks
for the letter, and texts can be ambiguous prefixes of each other), and anything longer than MAX_CHARS. `lenient`
(no tag): the letter after the last "answer is"/"answer:" (a capital one of the format's letters, optionally in
parentheses), else the last standalone capital letter of the format's letters in the completion's tail; note that
the article "A" counts as one, so the fallback is a guess, as lenient extraction is meant to be.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from skillexp.tasks.base import Item, Task, partition
from skillexp.tasks.sources import Source, read_rows
from skillexp.utils.schema import Range

MAX_CHARS = 200  # a letter, and at most its choice's short text
LETTERS = {"commonsense_qa": "ABCDE", "gpqa": "ABCD"}  # the letters each format's choices use
_GPQA_WRONG = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
_LETTER = re.compile(r"(?:\(\s?(?P<a>[A-Za-z])\s?\)|\[\s?(?P<b>[A-Za-z])\s?\]|(?P<c>[A-Za-z])[.):]?)"
                     r"(?:\s+(?P<rest>.+))?", re.DOTALL)


@dataclass
class MultipleChoiceConfig:
    path: str = "tau/commonsense_qa"  # a (prepared) hub dataset name, or a .jsonl / .parquet file
    hf_config: str | None = None
    hf_split: str = "validation"  # CommonsenseQA's labelled eval split (1,221 questions)
    format: Literal["commonsense_qa", "gpqa"] = "commonsense_qa"  # the row layout, see the module docstring
    data_seed: int = 1234  # fixes the order of GPQA's options; independent of the run seed
    num_test: Annotated[int, Range(-1)] = -1  # -1 = all remaining items; cut in the order test, val, rl, train
    num_val: Annotated[int, Range(-1)] = 0
    num_rl: Annotated[int, Range(-1)] = 0
    num_train: Annotated[int, Range(-1)] = 0
    lenient: bool = False  # without an <answer> tag, take the letter after "answer is", else the last choice letter


def _text(value: Any) -> str | None:
    """The text with its whitespace collapsed (an option is one line), or None when there is none."""
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def _fold(text: str) -> str:
    return " ".join(text.casefold().split()).strip(" .'\"")


def _commonsense_qa(where: str, row: dict[str, Any]) -> tuple[str, list[str], list[str], str]:
    choices = row.get("choices")
    labels = choices.get("label") if isinstance(choices, dict) else None
    texts = [_text(t) for t in choices.get("text") or []] if isinstance(choices, dict) else []
    question, key = row.get("question"), row.get("answerKey")
    if (_text(question) is None or not isinstance(labels, list) or len(labels) != len(texts) or len(labels) < 2
            or None in texts or len(set(labels)) != len(labels)
            or not all(isinstance(x, str) and len(x) == 1 and x in LETTERS["commonsense_qa"] for x in labels)):
        raise ValueError(f"{where}: not a CommonsenseQA row (a 'question', and 'choices' with as many single-letter "
                         f"'label's A-E as 'text's); its fields: {sorted(row)[:12]}.")
    if key not in labels:
        raise ValueError(f"{where}: answerKey {key!r} is not one of the labels {labels} (the hub's test split is "
                         f"unlabelled: read 'validation').")
    return question.strip(), labels, texts, key


def _gpqa(where: str, row: dict[str, Any], seed: int) -> tuple[str, list[str], list[str], str]:
    fields = ("Question", "Correct Answer", *_GPQA_WRONG)
    values = [_text(row.get(f)) for f in fields]
    if None in values:
        missing = [f for f, v in zip(fields, values) if v is None]
        raise ValueError(f"{where}: a GPQA row needs text in {missing} (its fields: {sorted(row)[:12]}).")
    _, correct, *wrong = values
    question = row["Question"].strip()  # its line breaks kept (GPQA questions hold lists and equations)
    if correct in wrong:
        raise ValueError(f"{where}: the correct answer is also given as a wrong one: {correct[:60]!r}.")
    options = [correct, *wrong]
    random.Random(f"gpqa-{seed}-{question}-{correct}").shuffle(options)
    labels = list(LETTERS["gpqa"])
    return question, labels, options, labels[options.index(correct)]


def read_letter(answer: str, labels: list[str], texts: list[str]) -> str | None:
    """The choice letter `answer` names under the module's rules, or None. Bounded; never raises."""
    if not isinstance(answer, str) or len(answer) > MAX_CHARS:
        return None
    s = answer.strip()
    for head, tail in (("\\boxed{", "}"), ("\\text{", "}"), ("**", "**")):
        if s.startswith(head) and s.endswith(tail) and len(s) > len(head) + len(tail):
            s = s[len(head): -len(tail)].strip()
    m = _LETTER.fullmatch(s)
    if m is None:
        return None
    letter = (m["a"] or m["b"] or m["c"]).upper()
    if letter not in labels:
        return None
    if m["rest"] is not None and _fold(m["rest"]) != _fold(texts[labels.index(letter)]):
        return None  # a letter may be followed only by its own choice's text
    return letter


class MultipleChoiceTask(Task):
    answer_type = "letter of the correct choice"

    def __init__(self, cfg: MultipleChoiceConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg
        letters = "".join(LETTERS[cfg.format])
        self._answer_is = re.compile(rf"(?i:answer)\s{{0,3}}(?:(?i:is)\s{{0,3}}:?|:)\s{{0,3}}(?:\*\*)?\(?([{letters}])"
                                     rf"(?![A-Za-z])")
        self._standalone = re.compile(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])")

    def sources(self) -> list[Source]:
        return [Source(self.cfg.path, self.cfg.hf_config, self.cfg.hf_split)]

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        items, seen = [], set()
        for where, row in read_rows(c.path, c.hf_config, c.hf_split, None, "the multiple_choice task"):
            stem, labels, texts, key = (_commonsense_qa(where, row) if c.format == "commonsense_qa"
                                        else _gpqa(where, row, c.data_seed))
            digest = hashlib.sha1("\n".join([stem, *sorted(texts)]).encode()).hexdigest()[:12]
            if digest in seen:
                continue
            seen.add(digest)
            lines = "\n".join(f"{label}. {text}" for label, text in zip(labels, texts))
            items.append(Item(id=f"{self.name}-{digest}", question=f"{stem}\n\n{lines}", answer=key,
                              meta={"labels": labels, "choices": texts, "stem": stem}))
        items.sort(key=lambda it: it.id)  # an order that does not depend on the file's order
        return partition(items, {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train})

    def _lenient_extract(self, completion: str) -> str | None:
        if not isinstance(completion, str):
            return None
        tail = completion[-2_000:]
        for pattern in (self._answer_is, self._standalone):
            found = pattern.findall(tail)
            if found:
                return found[-1]
        return None

    def _choices(self, item: Item) -> tuple[list[str], list[str]]:
        labels = item.meta.get("labels") or list(LETTERS[self.cfg.format])
        return labels, item.meta.get("choices") or [""] * len(labels)

    def check(self, item: Item, answer: str) -> bool:
        try:
            return read_letter(answer, *self._choices(item)) == item.answer
        except Exception:  # noqa: BLE001 - untrusted input: any failure means "not correct"
            return False

    def with_gold(self, item: Item, answer: str) -> Item | None:
        letter = read_letter(answer, *self._choices(item))
        return None if letter is None else replace(item, answer=letter)

    def reference_solution(self, item: Item) -> str:
        labels, texts = self._choices(item)
        text = texts[labels.index(item.answer)] if item.answer in labels else ""
        return f"The correct choice is {item.answer}: {text}\n<answer>{item.answer}</answer>"
