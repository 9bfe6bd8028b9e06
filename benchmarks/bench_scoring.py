"""Scoring throughput of every task's checker (the eval metric and the RL reward), in-process vs a 2-worker
ScorePool. GSM8K and multiple choice read small generated files in their datasets' schemas (the checker's cost
depends on the answers, not on the questions).

Run: .venv/bin/python benchmarks/bench_scoring.py [--n 4000]
Completions are a realistic mix: a few hundred characters of reasoning, then a correct answer (40%), a wrong
answer (40%), no answer at all (truncated, 15%), or a hostile one (5%). Pool start-up (spawning the workers,
imports, math-verify's first call) is timed apart from the steady-state rate.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from skillexp.tasks import build_task
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool

REASONING = "Let me think step by step. First I look at the numbers and try a few combinations. " * 5
HOSTILE = ["<answer>9**9**9</answer>", "<answer>" + "(" * 300 + "</answer>", "<answer>__import__('os')</answer>",
           "<answer>" + "\\frac{" * 20 + "</answer>", "<answer>３ + ５</answer>", "<answer>x^2+2x+1</answer>"]


def table_rows(kind: str, n: int, rng: random.Random) -> list[dict]:
    """`n` sums in GSM8K's or CommonsenseQA's row schema."""
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        if kind == "gsm8k":
            rows.append({"question": f"Q{i}: {a} + {b}?", "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b:,}"})
        else:
            texts = [str(a + b + d) for d in range(5)]
            rng.shuffle(texts)
            rows.append({"question": f"Q{i}: {a} + {b}?", "choices": {"label": list("ABCDE"), "text": texts},
                         "answerKey": "ABCDE"[texts.index(str(a + b))]})
    return rows


def workload(task: Task, n: int, rng: random.Random) -> tuple[list[Item], list[str]]:
    items = task.items("test") + task.items("train")
    chosen = [rng.choice(items) for _ in range(n)]
    completions = []
    for item in chosen:
        r = rng.random()
        if r < 0.4:
            completions.append(REASONING + task.reference_solution(item))
        elif r < 0.8:
            completions.append(f"{REASONING}\n<answer>{rng.choice(items).answer}</answer>")
        elif r < 0.95:
            completions.append(REASONING * 4)  # ran out of tokens before answering
        else:
            completions.append(REASONING + rng.choice(HOSTILE))
    return chosen, completions


def measure(task: Task, items: list[Item], completions: list[str], workers: int) -> tuple[float, float, float]:
    """(start-up seconds, checks/s, mean score)"""
    with ScorePool(workers=workers) as pool:
        t0 = time.perf_counter()
        pool.score(task, items[:64], completions[:64])  # spawns and warms every worker
        t1 = time.perf_counter()
        scores = pool.score(task, items, completions)
        t2 = time.perf_counter()
        assert pool.lost == 0
    return t1 - t0, len(items) / (t2 - t1), sum(scores) / len(scores)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000, help="completions per task (math uses half)")
    args = ap.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    tables = {}
    for kind in ("gsm8k", "multiple_choice"):  # the checker's input, in the schema `skillexp data prepare` writes
        tables[kind] = tmp / f"{kind}.jsonl"
        tables[kind].write_text("".join(json.dumps(r) + "\n" for r in table_rows(kind, 500, random.Random(0))))
    for kind, params, n in [("countdown", {"num_numbers": 4}, args.n), ("multiplication", {"digits": 3}, args.n),
                            ("acronym", {"length": 4}, args.n), ("letter_countdown", {"length": 5}, args.n),
                            ("gsm8k", {"path": str(tables["gsm8k"])}, args.n),
                            ("multiple_choice", {"path": str(tables["multiple_choice"])}, args.n),
                            ("math", {}, args.n // 2)]:
        task = build_task(kind, params)
        items, completions = workload(task, n, random.Random(0))
        for workers in (0, 2):
            startup, rate, acc = measure(task, items, completions, workers)
            rows.append((task.name, "in-process" if workers == 0 else f"ScorePool({workers})", n, startup, rate, acc))
    print("| task | scorer | completions | start-up s | checks/s | mean score |")
    print("|---|---|---|---|---|---|")
    for name, how, n, startup, rate, acc in rows:
        print(f"| {name} | {how} | {n} | {startup:.2f} | {rate:,.0f} | {acc:.3f} |")


if __name__ == "__main__":
    main()
