"""`method=distill` and `method=bolt`: SFT on a stronger model's whole replies to the training questions.

- `distill` (SkillFactory's "R1 Distill", the "needs a stronger model" row; its OpenThoughts "QwQ distillation"):
  the teacher is asked each question exactly as the student is (`task.messages`), and its reply is the target,
  reasoning included: a reasoning model's thinking, whether it comes inside the text or beside it (DeepSeek's and
  vLLM's `reasoning_content`), is kept as a leading `<think>` block (teachers/openai_client.py). With
  `method.distill.source=dataset` the traces are those the task's data carries (`item.meta["solution"]`:
  OpenThoughts' QwQ traces), and no teacher is asked.
- `bolt` (BOLT, Pang et al. 2025, SkillFactory's BOLT-style baseline): the teacher (GPT-4o-mini in the paper) sees
  hand-written long-CoT examples first (`skillexp/data/bolt/<task>.jsonl`, a file the user can replace), then the
  question, and writes a trace in their format; replies that do not follow it are dropped.

A reply is kept when the task's checker finds its answer correct (where the answer is read: a reply that gives it
only in `\\boxed{}` has it restated in the task's format after the reply, nothing cut), at most
`keep_per_question` distinct ones per question. Every reply and its verdict go to `traces.jsonl` beside the data;
the teacher's answers are cached on disk (teachers/chat.py), so a killed build asks again only what it lacked.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Callable, Sequence

from skillexp.methods.config import DistillConfig, SFTDataInputs
from skillexp.runtime import Runtime
from skillexp.tasks.answer import last_boxed, last_tag
from skillexp.tasks.base import Item, Task
from skillexp.teachers import build_teacher
from skillexp.teachers.base import LazyTeacher, Teacher
from skillexp.utils.io import atomic_write_jsonl

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "bolt"
MAX_TRACE_CHARS = 400_000  # a reply longer than this is not read (untrusted text: bounded work)
# BOLT's format, as its examples write it: the reasoning in <think>, then the answer in <answer> tags
BOLT_FORMAT = re.compile(r"<think>\n(?:(?!</?think>).)+\n</think>\n\n(?:(?!</?think>).)*<answer>[^<]+</answer>\s*",
                         re.S)
BOLT_SYSTEM = (
    "You solve problems by thinking at length before you answer. Inside <think></think>, understand the problem, "
    "explore several approaches, check each candidate, notice and correct your mistakes, and verify the final "
    "answer; then, after </think>, give the final answer in <answer></answer> tags. Follow the examples' format.")


def follows_format(text: str) -> bool:
    """Whether `text` is laid out as BOLT's examples are (bounded: longer texts are refused unread)."""
    return len(text) <= MAX_TRACE_CHARS and BOLT_FORMAT.fullmatch(text) is not None


def load_examples(cfg: DistillConfig, task_kind: str, root_dir: str) -> list[dict[str, str]]:
    """The first `cfg.num_examples` examples of the file `cfg.examples` names (relative to the directory the
    command ran in), else of the task's shipped one; each a {"question", "response"} whose response follows the
    format. A bad file raises ValueError naming the line and the fix."""
    shape = 'JSON lines of {"question": ..., "response": "<think>\\n...\\n</think>\\n\\n<answer>...</answer>"}'
    if cfg.examples is None:
        path = EXAMPLES_DIR / f"{task_kind}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"no BOLT examples ship for task {task_kind!r}: write {cfg.num_examples} as "
                                    f"{shape} and set method.distill.examples to the file.")
    else:
        path = Path(cfg.examples) if Path(cfg.examples).is_absolute() else Path(root_dir) / cfg.examples
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: give a file of {shape}.")
    examples = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not JSON ({e.msg}); expected {shape}") from None
        if not (isinstance(row, dict) and isinstance(row.get("question"), str)
                and isinstance(row.get("response"), str)):
            raise ValueError(f"{path}, line {n}: expected {shape}")
        if not follows_format(row["response"]):
            raise ValueError(f"{path}, line {n}: the response is not <think>\\n...\\n</think>, a blank line, then the "
                             "answer in <answer></answer> tags (the format the teacher is asked to follow).")
        examples.append({"question": row["question"], "response": row["response"]})
    if len(examples) < cfg.num_examples:
        raise ValueError(f"{path} has {len(examples)} examples; method.distill.num_examples={cfg.num_examples} "
                         f"asks for more: add examples or lower it.")
    return examples[: cfg.num_examples]


def _posed(task: Task, question: str) -> str:
    """The user turn that poses `question` as the student is asked it."""
    return task.messages(Item("example", question, ""))[-1]["content"]


def conversations(method: str, examples: Sequence[dict[str, str]] | None, task: Task,
                  items: Sequence[Item]) -> list[list[dict[str, str]]]:
    """What the teacher is sent per question: the student's own prompt (distill), or BOLT's instruction and its
    `examples` as earlier turns, then the question (bolt)."""
    if method != "bolt":
        return [task.messages(it) for it in items]
    shots: list[dict[str, str]] = []
    for ex in examples or []:
        shots += [{"role": "user", "content": _posed(task, ex["question"])},
                  {"role": "assistant", "content": ex["response"]}]
    system = {"role": "system", "content": BOLT_SYSTEM}
    return [[system, *shots, {"role": "user", "content": _posed(task, it.question)}] for it in items]


def with_answer(task: Task, item: Item, text: str) -> str | None:
    """`text` with its final answer where the task reads it: as it is when it is there; else the answer it gives
    in `\\boxed{}` or tags restated after it in the task's format (`Task.reference_solution`); None without one."""
    if task.extract(text) is not None:
        return text
    answer = last_tag(text) or last_boxed(text)  # both read a bounded tail
    if answer is None:
        return None
    return f"{text.rstrip()}\n\n{task.reference_solution(dataclasses.replace(item, answer=answer))}"


def _candidates(inputs: SFTDataInputs, task: Task, items: Sequence[Item], teacher: Teacher) -> list[list[str]]:
    cfg = inputs.distill
    assert cfg is not None
    if cfg.source == "dataset":
        return [[s] if isinstance(s := it.meta.get("solution"), str) and s else [] for it in items]
    return teacher.complete(conversations(inputs.method, inputs.examples, task, items), n=cfg.traces_per_question,
                            seed=inputs.seed, temperature=cfg.temperature, max_tokens=cfg.max_tokens, op=inputs.method)


def build_distill(inputs: SFTDataInputs, task: Task, items: Sequence[Item], out_dir: Path, rt: Runtime,
                  make_teacher: Callable[[], Teacher] | None = None) -> tuple[list[dict], dict[str, float]]:
    """The SFT rows of `inputs.method` (distill or bolt) and the build's statistics (teacher use included)."""
    cfg, m = inputs.distill, inputs.method
    assert cfg is not None
    teacher = LazyTeacher(make_teacher or (lambda: build_teacher(inputs.teacher, m, task, rt.cache_dir, inputs.seed)))
    try:
        candidates = _candidates(inputs, task, items, teacher)
    finally:
        teacher.close()
    flat = [(i, j, text[:MAX_TRACE_CHARS]) for i, texts in enumerate(candidates) for j, text in enumerate(texts)]
    answered = [(i, j, text, with_answer(task, items[i], text)) for i, j, text in flat]
    scorable = [(i, j, text, full) for i, j, text, full in answered if full is not None]
    with rt.scoring.pool() as pool:
        scores = pool.score(task, [items[i] for i, *_ in scorable], [full for *_, full in scorable])
    verdicts = {(i, j): s for (i, j, *_), s in zip(scorable, scores)}
    rows, log_rows, kept_by_question = [], [], [0] * len(items)
    seen: set[tuple[int, str]] = set()
    counts = dict.fromkeys(("format_dropped", "no_answer", "wrong", "duplicate", "restated", "with_think"), 0)
    for (i, j, text, full) in answered:
        score = verdicts.get((i, j))
        fits = m != "bolt" or follows_format(text)
        verdict = ("no_answer" if full is None else "wrong" if score is None or score < 1
                   else "format_dropped" if not fits else "duplicate" if (i, full) in seen
                   or kept_by_question[i] >= cfg.keep_per_question else "kept")
        log_rows.append({"question_id": items[i].id, "sample": j, "verdict": verdict, "text": text})
        if verdict != "kept":
            counts[verdict] += 1
            continue
        assert full is not None
        seen.add((i, full))
        kept_by_question[i] += 1
        counts["restated"] += full != text
        counts["with_think"] += "<think>" in full
        rows.append({"messages": task.messages(items[i]) + [{"role": "assistant", "content": full}],
                     "question_id": items[i].id, "sample": j, "source": m})
    atomic_write_jsonl(out_dir / "traces.jsonl", log_rows)
    n = max(len(flat), 1)
    stats = {f"{m}/traces": float(len(flat)), f"{m}/correct": sum(s >= 1 for s in scores) / n,
             f"{m}/questions_with_a_kept_trace": sum(k > 0 for k in kept_by_question) / max(len(items), 1),
             **{f"{m}/{k}": float(v) for k, v in counts.items()}, **teacher.metrics()}
    return rows, stats

