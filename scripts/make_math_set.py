"""Generate skillexp/data/math_small.jsonl: a small MATH-style set (subject, level, LaTeX answers) for offline tests.

Deterministic: `python scripts/make_math_set.py` rewrites the same file. Answers are computed exactly with
`fractions`, never by evaluating text.
"""
from __future__ import annotations

import json
import math
import random
from fractions import Fraction
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "skillexp" / "data" / "math_small.jsonl"


def latex(q: Fraction) -> str:
    if q.denominator == 1:
        return str(q.numerator)
    sign = "-" if q < 0 else ""
    return f"{sign}\\frac{{{abs(q.numerator)}}}{{{q.denominator}}}"


def fraction_sum(rng: random.Random) -> dict:
    a, b = Fraction(rng.randint(1, 9), rng.randint(2, 9)), Fraction(rng.randint(1, 9), rng.randint(2, 9))
    return dict(problem=f"Compute ${latex(a)} + {latex(b)}$. Express your answer as a common fraction.",
                answer=latex(a + b), subject="Prealgebra", level=2)


def linear_equation(rng: random.Random) -> dict:
    a, x, b = rng.choice([2, 3, 4, 5, 6, 7, -2, -3]), rng.randint(-20, 20), rng.randint(-30, 30)
    return dict(problem=f"Solve for $x$: ${a}x + {b} = {a * x + b}$.".replace("+ -", "- "),
                answer=str(x), subject="Algebra", level=1)


def quadratic_roots_sum(rng: random.Random) -> dict:
    r, s = rng.randint(-9, 9), rng.randint(-9, 9)
    b, c = -(r + s), r * s
    poly = f"x^2 {'+' if b >= 0 else '-'} {abs(b)}x {'+' if c >= 0 else '-'} {abs(c)}"
    return dict(problem=f"What is the sum of all values of $x$ such that ${poly} = 0$?",
                answer=str(r + s if r != s else r), subject="Algebra", level=3)


def gcd_lcm(rng: random.Random) -> dict:
    a, b = rng.randint(12, 240), rng.randint(12, 240)
    if rng.random() < 0.5:
        return dict(problem=f"What is the greatest common divisor of ${a}$ and ${b}$?", answer=str(math.gcd(a, b)),
                    subject="Number Theory", level=2)
    return dict(problem=f"What is the least common multiple of ${a}$ and ${b}$?", answer=str(math.lcm(a, b)),
                subject="Number Theory", level=2)


def percent(rng: random.Random) -> dict:
    p, n = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.randint(2, 40) * 20
    return dict(problem=f"What is ${p}\\%$ of ${n}$?", answer=latex(Fraction(p * n, 100)),
                subject="Prealgebra", level=1)


def power_mod(rng: random.Random) -> dict:
    a, e, m = rng.randint(2, 9), rng.randint(10, 60), rng.choice([5, 7, 9, 11, 13])
    return dict(problem=f"What is the remainder when ${a}^{{{e}}}$ is divided by ${m}$?", answer=str(pow(a, e, m)),
                subject="Number Theory", level=4)


def sqrt_simplify(rng: random.Random) -> dict:
    k, r = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
    return dict(problem=f"Simplify $\\sqrt{{{k * k * r}}}$.", answer=f"{k}\\sqrt{{{r}}}", subject="Algebra", level=2)


GENERATORS = [fraction_sum, linear_equation, quadratic_roots_sum, gcd_lcm, percent, power_mod, sqrt_simplify]


def main(n: int = 420, seed: int = 7) -> None:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        row = rng.choice(GENERATORS)(rng)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} problems to {OUT}")


if __name__ == "__main__":
    main()
