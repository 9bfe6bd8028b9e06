"""Generate skillexp/data/math_small.jsonl: a small MATH-style set for offline tests and CPU runs.

Rows have MATH-500's fields (`problem`, `answer` in LaTeX, `subject`, `level` 1-5), so the math task reads the
shipped set and real MATH files with the same defaults. Ten problem families over arithmetic, fractions, algebra
and number theory, levels by family. Answers are computed exactly with `fractions`/`math`, never by evaluating
text. Deterministic: `python scripts/make_math_set.py` rewrites the same bytes.
"""
from __future__ import annotations

import argparse
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


def signed(c: int, term: str = "") -> str:
    """` + 3x` / ` - 3x`, for writing polynomials without `+ -`."""
    return f" {'+' if c >= 0 else '-'} {abs(c)}{term}"


def order_of_operations(rng: random.Random) -> dict:
    a, b, c, d = (rng.randint(2, 12) for _ in range(4))
    return dict(problem=f"Evaluate $({a} + {b}) \\cdot {c} - {d}^2$.", answer=str((a + b) * c - d * d),
                subject="Prealgebra", level=1)


def percent(rng: random.Random) -> dict:
    p, n = rng.choice([5, 10, 12, 15, 20, 25, 30, 40, 75]), rng.randint(2, 40) * 20
    return dict(problem=f"What is ${p}\\%$ of ${n}$?", answer=latex(Fraction(p * n, 100)),
                subject="Prealgebra", level=1)


def fraction_sum(rng: random.Random) -> dict:
    a, b = Fraction(rng.randint(1, 9), rng.randint(2, 9)), Fraction(rng.randint(1, 9), rng.randint(2, 9))
    return dict(problem=f"Compute ${latex(a)} + {latex(b)}$. Express your answer as a common fraction.",
                answer=latex(a + b), subject="Prealgebra", level=2)


def linear_equation(rng: random.Random) -> dict:
    a, x, b = rng.choice([2, 3, 4, 5, 6, 7, -2, -3]), rng.randint(-20, 20), rng.randint(1, 30) * rng.choice([1, -1])
    return dict(problem=f"Solve for $x$: ${a}x{signed(b)} = {a * x + b}$.", answer=str(x),
                subject="Algebra", level=1)


def gcd_lcm(rng: random.Random) -> dict:
    a, b = rng.randint(12, 240), rng.randint(12, 240)
    if rng.random() < 0.5:
        return dict(problem=f"What is the greatest common divisor of ${a}$ and ${b}$?", answer=str(math.gcd(a, b)),
                    subject="Number Theory", level=2)
    return dict(problem=f"What is the least common multiple of ${a}$ and ${b}$?", answer=str(math.lcm(a, b)),
                subject="Number Theory", level=2)


def sqrt_simplify(rng: random.Random) -> dict:
    k, r = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7])
    return dict(problem=f"Simplify $\\sqrt{{{k * k * r}}}$.", answer=f"{k}\\sqrt{{{r}}}", subject="Algebra", level=2)


def quadratic_roots_sum(rng: random.Random) -> dict:
    r, s = rng.randint(-9, 9), rng.randint(-9, 9)
    poly = f"x^2{signed(-(r + s), 'x')}{signed(r * s)}"
    return dict(problem=f"What is the sum of all values of $x$ such that ${poly} = 0$?",
                answer=str(r + s if r != s else r), subject="Algebra", level=3)


def linear_system(rng: random.Random) -> dict:
    x, y = rng.randint(-9, 9), rng.randint(-9, 9)
    a, b, c, d = rng.randint(1, 6), rng.randint(1, 6), rng.randint(1, 6), -rng.randint(1, 6)
    return dict(problem=f"If ${a}x{signed(b, 'y')} = {a * x + b * y}$ and ${c}x{signed(d, 'y')} = {c * x + d * y}$, "
                        "what is the ordered pair $(x, y)$?",
                answer=f"({x}, {y})", subject="Algebra", level=4)


def power_mod(rng: random.Random) -> dict:
    a, e, m = rng.randint(2, 9), rng.randint(10, 60), rng.choice([5, 7, 9, 11, 13])
    return dict(problem=f"What is the remainder when ${a}^{{{e}}}$ is divided by ${m}$?", answer=str(pow(a, e, m)),
                subject="Number Theory", level=4)


def dice_probability(rng: random.Random) -> dict:
    sides = rng.choice([4, 6, 8])
    total = rng.randint(3, 2 * sides - 1)
    ways = sum(1 for i in range(1, sides + 1) for j in range(1, sides + 1) if i + j == total)
    return dict(problem=f"Two fair {sides}-sided dice, with faces numbered 1 to {sides}, are rolled. What is the "
                        f"probability that the sum of the two numbers is {total}? Express your answer as a common "
                        "fraction.",
                answer=latex(Fraction(ways, sides * sides)), subject="Counting & Probability", level=5)


GENERATORS = [order_of_operations, percent, fraction_sum, linear_equation, gcd_lcm, sqrt_simplify,
              quadratic_roots_sum, linear_system, power_mod, dice_probability]


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        row = rng.choice(GENERATORS)(rng)
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = generate(args.n, args.seed)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} problems to {args.out}")


if __name__ == "__main__":
    main()
