r"""MATH-style questions with free-form answers, graded by math-verify.

Items come from a local `.jsonl`/`.parquet` file, a hub dataset name (read from its file prepared beforehand by
`skillexp data prepare`, see `sources`), or, with `path: null`, the small generated set shipped in
`skillexp/data/` (so the whole path runs offline). Field names
are configurable; a gold field holding a full solution (MATH's `solution`) is reduced to its last `\boxed{}`.
Without a split column, items are ordered by a hash of the question and cut test, val, rl, train, so the split
of a question does not depend on the file's row order.

The model's answer is read from the last `<answer>` span (`answer_format: tag`, matching the prompts; `lenient`
falls back to the last `\boxed{}`) or from the last `\boxed{}` (`answer_format: boxed`). math-verify bounds its
own work with `signal.alarm`, which only works in a process's main thread; `check` refuses to run elsewhere
(a programming error, not a model error), so score through `ScorePool`, whose workers call it from their main
threads. Answers longer than MAX_ANSWER_CHARS or nested deeper than MAX_NESTING are refused before parsing:
nothing honest looks like that, and math-verify would spend its whole timeout on them.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from skillexp.tasks.answer import MAX_ANSWER_CHARS, last_boxed
from skillexp.tasks.base import SKILL_CATALOGUES, SPLITS, Item, Task, partition
from skillexp.tasks.sources import Source, read_rows, source_file
from skillexp.utils.schema import AT_LEAST_1, Range

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "math_small.jsonl"
MAX_NESTING = 12  # depth of {[( brackets in an answer; honest answers need < 6, each level costs parse time


@dataclass
class MathConfig:
    path: str | None = None  # .jsonl / .parquet file, or a (prepared) hub dataset name; null = the shipped small set
    hf_config: str | None = None  # dataset config name (HF datasets only)
    hf_split: str = "test"  # the split of the HF dataset to read (MATH-500, AIME and AMC ship only "test")
    question_field: str = "problem"
    answer_field: str = "answer"  # a solution text works too: its last \boxed{} is taken as the gold answer
    subject_field: str | None = "subject"
    level_field: str | None = "level"
    split_field: str | None = None  # a column naming our split (train/rl/val/test); else split by question hash
    answer_format: Literal["tag", "boxed"] = "tag"  # where the model's final answer is read from
    num_test: Annotated[int, Range(-1)] = 100  # -1 = all remaining items
    num_val: Annotated[int, Range(-1)] = 50
    num_rl: Annotated[int, Range(-1)] = 100
    num_train: Annotated[int, Range(-1)] = -1
    parsing_timeout_s: Annotated[int, AT_LEAST_1] = 3  # math-verify's signal.alarm timeouts, whole seconds
    verify_timeout_s: Annotated[int, AT_LEAST_1] = 3
    lenient: bool = False  # with answer_format=tag, fall back to the last \boxed{} when the tag is missing
    # a split read whole from another table: {train: {hf_split: train}} (path and hf_config default to the task's);
    # STAT's recipe takes val/test from MATH's test split and train and rl both from MATH's train split
    splits_from: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a worked solution (MATH's `solution`): method=sft trains on it, ending in the answer format, not the bare answer
    solution_field: str | None = None

    def __post_init__(self) -> None:
        for split, spec in self.splits_from.items():
            if split not in SPLITS:
                raise ValueError(f"splits_from.{split}: not a split; choose among {list(SPLITS)}.")
            if not isinstance(spec, dict) or set(spec) - {"path", "hf_config", "hf_split"}:
                raise ValueError(f"splits_from.{split} must map path / hf_config / hf_split, got {spec!r}.")
        if self.splits_from and self.split_field:
            raise ValueError("splits_from and split_field both choose splits: set one.")

    def split_source(self, split: str) -> tuple[str | None, str | None, str]:
        """(path, hf_config, hf_split) the split is read from."""
        spec = self.splits_from.get(split, {})
        return (spec.get("path", self.path), spec.get("hf_config", self.hf_config), spec.get("hf_split", self.hf_split))


def _check_fields(rows: list[tuple[str, dict[str, Any]]], cfg: MathConfig, config_path: str) -> None:
    """Every row has the fields the task reads, or the message names the row, the field and the setting."""
    needed = [(k, f) for k, f in (("question_field", cfg.question_field), ("answer_field", cfg.answer_field),
                                  ("split_field", cfg.split_field)) if f is not None]
    for where, row in rows:
        for key, name in needed:
            if row.get(name) is None:
                raise ValueError(f"{where}: the row has no {name!r} field (its fields: {sorted(row)[:12]}); set "
                                 f"{config_path}.{key} to the field that holds it, or fix the row.")


def _gold(value: Any) -> str:
    text = str(value).strip()
    return (last_boxed(text) or text) if "\\boxed" in text else text


def _too_nested(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch in "{[(":
            depth += 1
            if depth > MAX_NESTING:
                return True
        elif ch in "}])":
            depth -= 1
    return False


@functools.lru_cache(maxsize=8192)
def _parse_gold(answer: str, timeout_s: int) -> list:
    """Gold answers repeat across k samples and RL rollouts; parse each once per worker."""
    from math_verify import parse

    return parse(f"${answer}$", parsing_timeout=timeout_s)


class MathTask(Task):
    skill_catalogue = SKILL_CATALOGUES / "math.json"  # the paper's per-subject skill lists

    def __init__(self, cfg: MathConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg
        self.answer_type, self.answer_format = "final answer", cfg.answer_format

    def _tables(self) -> list[tuple[str | None, str | None, str]]:
        """The distinct tables read: the task's own, and those of `splits_from`."""
        c = self.cfg
        main = [(c.path, c.hf_config, c.hf_split)] if set(c.splits_from) != set(SPLITS) else []
        return list(dict.fromkeys([*main, *(c.split_source(s) for s in c.splits_from)]))

    def sources(self) -> list[Source]:
        return [Source(p, cfg, split) for p, cfg, split in self._tables() if p]

    def data_files(self) -> list[Path]:
        return [source_file(p, cfg, split, SHIPPED) for p, cfg, split in self._tables()]

    def _read(self, path: str | None, config: str | None, split: str) -> list[Item]:
        """The table's items, deduplicated on the question, in an order that does not depend on the file's."""
        c = self.cfg
        rows = read_rows(path, config, split, SHIPPED, "the math task")
        _check_fields(rows, c, self.config_path)
        items, seen = [], set()
        for _, r in rows:
            question = str(r[c.question_field])
            digest = hashlib.sha1(question.encode()).hexdigest()[:12]
            if digest in seen:
                continue
            seen.add(digest)
            meta = {"subject": r.get(c.subject_field) if c.subject_field else None,
                    "level": r.get(c.level_field) if c.level_field else None,
                    "split": r.get(c.split_field) if c.split_field else None}
            if c.solution_field and r.get(c.solution_field):
                meta["solution"] = str(r[c.solution_field])
            items.append(Item(id=f"{self.name}-{digest}", question=question, answer=_gold(r[c.answer_field]),
                              meta=meta))
        return sorted(items, key=lambda it: it.id)

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        sizes = {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train}
        if c.splits_from:  # those splits come whole (or cut to their size) from their own tables
            own = {s: 0 if s in c.splits_from else n for s, n in sizes.items()}
            out = partition(self._read(c.path, c.hf_config, c.hf_split), own) if any(own.values()) else \
                {s: [] for s in SPLITS}
            tables: dict[tuple, list[Item]] = {}
            for s in c.splits_from:
                if c.split_source(s) not in tables:
                    tables[c.split_source(s)] = self._read(*c.split_source(s))
                items = tables[c.split_source(s)]
                out[s] = items if sizes[s] < 0 else items[: sizes[s]]
            return out
        items = self._read(c.path, c.hf_config, c.hf_split)
        if not c.split_field:
            return partition(items, sizes)
        out = {s: [it for it in items if it.meta["split"] == s] for s in SPLITS}
        if items and not any(out.values()):
            found = sorted({str(it.meta["split"]) for it in items})[:10]
            raise ValueError(f"math task: {c.split_field!r} holds {found}, none of {list(SPLITS)}.")
        return {s: v if sizes[s] < 0 else v[: sizes[s]] for s, v in out.items()}

    def _lenient_extract(self, completion: str) -> str | None:  # a missing <answer> tag: the last \boxed{}
        return last_boxed(completion) if self.answer_format == "tag" else None

    def check(self, item: Item, answer: str) -> bool:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("math-verify needs a process's main thread: score math through ScorePool.")
        if not answer or len(answer) > MAX_ANSWER_CHARS or _too_nested(answer):
            return False
        from math_verify import parse, verify

        try:
            gold = _parse_gold(item.answer, self.cfg.parsing_timeout_s)
            pred = parse(f"${answer}$", parsing_timeout=self.cfg.parsing_timeout_s)
            return bool(gold and pred and verify(gold, pred, timeout_seconds=self.cfg.verify_timeout_s))
        except Exception:  # noqa: BLE001 - untrusted input: any parser failure means "not correct"
            return False

    def reference_solution(self, item: Item) -> str:
        """The worked solution when `solution_field` gives one (ending in the answer format), else the answer."""
        solution = item.meta.get("solution")
        if self.cfg.answer_format == "boxed":
            if solution and last_boxed(solution) is not None:
                return solution
            return f"{solution or ''}\nThe answer is $\\boxed{{{item.answer}}}$.".lstrip()
        return f"{solution}\n<answer>{item.answer}</answer>" if solution else f"<answer>{item.answer}</answer>"
