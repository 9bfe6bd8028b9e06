r"""MATH-style questions with free-form answers, graded by math-verify.

Items come from a local JSONL/Parquet file, an HF dataset, or (path null) the small generated set shipped in
`skillexp/data/`. math-verify bounds its own work with `signal.alarm`, which only works in a process's main
thread, so `score` refuses to run elsewhere: use `ScorePool`, whose workers call it from their main threads.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from skillexp.tasks.answer import MAX_ANSWER_CHARS, last_boxed, last_tag
from skillexp.tasks.base import Item, Task, partition

SHIPPED = Path(__file__).resolve().parent.parent / "data" / "math_small.jsonl"


@dataclass
class MathConfig:
    path: str | None = None  # .jsonl / .parquet file, or an HF dataset name; null = the shipped small set
    hf_config: str | None = None  # dataset config name (HF datasets only)
    hf_split: str = "train"  # which split of the HF dataset / file to read
    question_field: str = "problem"
    answer_field: str = "answer"
    subject_field: str | None = "subject"
    level_field: str | None = "level"
    split_field: str | None = None  # a column naming our split (train/rl/val/test); else split by question hash
    answer_format: Literal["tag", "boxed"] = "tag"  # where the model's final answer is read from
    num_test: int = 100
    num_val: int = 50
    num_rl: int = 100
    num_train: int = -1  # -1: everything left
    parsing_timeout_s: int = 5
    verify_timeout_s: int = 5
    lenient: bool = False  # with answer_format=tag, fall back to the last \boxed{} when the tag is missing


def _load_rows(cfg: MathConfig) -> list[dict]:
    path = Path(cfg.path) if cfg.path else SHIPPED
    if path.suffix == ".jsonl" and path.exists():
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    import datasets

    if path.suffix == ".parquet" and path.exists():
        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    if cfg.path and not path.exists() and not Path(cfg.path).suffix:
        return list(datasets.load_dataset(cfg.path, cfg.hf_config, split=cfg.hf_split))
    raise FileNotFoundError(f"math task: {path} is not an existing .jsonl/.parquet file or an HF dataset name.")


class MathTask(Task):
    def __init__(self, cfg: MathConfig, name: str):
        super().__init__(name, cfg.lenient)
        self.cfg = cfg
        self.answer_type = "final answer" if cfg.answer_format == "tag" else "final answer within \\boxed{}"

    def _build_splits(self) -> dict[str, list[Item]]:
        c = self.cfg
        rows = _load_rows(c)
        for field in (c.question_field, c.answer_field):
            if rows and field not in rows[0]:
                raise KeyError(f"math task: no field {field!r} in {c.path or SHIPPED}; columns: {sorted(rows[0])}. "
                               "Set question_field / answer_field.")
        items = [Item(id=f"{self.name}-{hashlib.sha1(r[c.question_field].encode()).hexdigest()[:10]}",
                      question=r[c.question_field], answer=str(r[c.answer_field]),
                      meta={"subject": r.get(c.subject_field or ""), "level": r.get(c.level_field or ""),
                            "split": r.get(c.split_field or "")}) for r in rows]
        if c.split_field:
            return {s: [it for it in items if it.meta["split"] == s] for s in ("train", "rl", "val", "test")}
        items.sort(key=lambda it: it.id)  # a stable order that does not depend on the file's order
        return partition(items, {"test": c.num_test, "val": c.num_val, "rl": c.num_rl, "train": c.num_train})

    def extract(self, completion: str) -> str | None:
        if self.cfg.answer_format == "boxed":
            return last_boxed(completion)
        tagged = last_tag(completion)
        return last_boxed(completion) if tagged is None and self.lenient else tagged

    def check(self, item: Item, answer: str) -> bool:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("math-verify needs a process's main thread: score math through ScorePool.")
        if len(answer) > MAX_ANSWER_CHARS:
            return False
        from math_verify import parse, verify

        try:
            gold = parse(f"${item.answer}$", parsing_timeout=self.cfg.parsing_timeout_s)
            pred = parse(f"${answer}$", parsing_timeout=self.cfg.parsing_timeout_s)
            return bool(gold and pred and verify(gold, pred, timeout_seconds=self.cfg.verify_timeout_s))
        except Exception:  # noqa: BLE001 - untrusted input: any parser failure means "not correct"
            return False

    def reference_solution(self, item: Item) -> str:
        if self.cfg.answer_format == "boxed":
            return f"The answer is $\\boxed{{{item.answer}}}$."
        return f"<answer>{item.answer}</answer>"
