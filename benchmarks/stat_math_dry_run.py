"""The teacher dry run of STAT's paper recipe (`experiment=stat_math`), every row, at MATH's sizes, without MATH.

Run: .venv/bin/python benchmarks/stat_math_dry_run.py [--reply-tokens 2000]
MATH cannot be downloaded here, so this writes MATH-sized stand-ins: MATH-lighteval's train (7,500) and test (5,000)
tables made of the MATH-style questions skillexp ships (400, with MATH's subjects and levels, repeated with a
numbered suffix to MATH's sizes) and MATH-perturb hard (279, continual STAT's profile) of the same questions, the
other eval sets as `skillexp data prepare --stand-ins` writes them; then
`skillexp teacher estimate experiment=stat_math method=<every row that asks the teacher>`. Request counts are the
recipe's (they depend on sizes, not wording); tokens follow the shipped questions' lengths, which are shorter than
MATH's on average, so read the token and price columns as a lower estimate of the same order.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROWS = "math_augment,math_hard,embed_sel,embed_syn,stat_sel,stat_syn,stat_consel,stat_consyn"
SIZES = {"train": 7500, "test": 5000}  # MATH-lighteval's splits
PERTURB_HARD = 279  # MATH-perturb hard's questions: continual STAT's profile


def math_table(n: int, solution: bool = True) -> str:
    """`n` rows of MATH-lighteval's schema (problem, solution with a boxed answer, type, level), or MATH-perturb's
    (problem, answer, type), from the shipped questions."""
    shipped = [json.loads(line) for line in (ROOT / "skillexp" / "data" / "math_small.jsonl").open()]
    out = []
    for i in range(n):
        r = shipped[i % len(shipped)]
        suffix = f" (variant {i // len(shipped)})" if i >= len(shipped) else ""
        gold = {"solution": f"So $\\boxed{{{r['answer']}}}$.", "level": f"Level {r['level']}"} if solution else \
            {"answer": r["answer"]}
        out.append(json.dumps({"problem": r["problem"] + suffix, **gold, "type": r["subject"]}))
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reply-tokens", default="2000")
    args = ap.parse_args()
    from skillexp.tasks.sources import prepared_file

    env = {**os.environ, "OPENAI_API_KEY": os.environ.get("OPENAI_API_KEY", "sk-dry-run-sends-nothing")}
    skillexp = [sys.executable, "-m", "skillexp"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        subprocess.run([*skillexp, "data", "prepare", "--stand-ins", "experiment=stat_math", "--out", str(data)],
                       check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        for split, n in SIZES.items():
            prepared_file("DigitalLearningGmbH/MATH-lighteval", None, split, data).write_text(math_table(n))
        (data / "math_perturb" / "math_perturb_hard.jsonl").write_text(math_table(PERTURB_HARD, solution=False))
        subprocess.run([*skillexp, "teacher", "estimate", "experiment=stat_math", f"method={ROWS}",
                        f"paths.data_dir={data}", "--reply-tokens", args.reply_tokens], check=True, cwd=ROOT, env=env)


if __name__ == "__main__":
    main()
