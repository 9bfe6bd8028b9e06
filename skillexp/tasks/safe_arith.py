"""Exact evaluation of untrusted arithmetic without `eval`: an AST walk over a whitelist, bounded everywhere.

Only integer literals and the binary operators + - * / are accepted (no unary minus, no powers, no names, no
calls), evaluated with `Fraction` so 6 / 4 * 2 == 3 exactly. Length, parenthesis depth, node count and the size of
every intermediate are checked, so no input can make it slow or large; every failure returns None.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

MAX_CHARS = 256
MAX_PAREN_DEPTH = 16
MAX_NODES = 64
MAX_MAGNITUDE = 10**15  # bound on numerators and denominators of every intermediate
_ALLOWED = re.compile(r"[0-9+\-*/() \t]*")  # ASCII only: unicode digits and letters are rejected up front
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b}


@dataclass(frozen=True)
class Evaluated:
    value: Fraction
    numbers: tuple[int, ...]  # the integer literals used, in order


def _normalise(expr: str) -> str:
    return expr.replace("×", "*").replace("÷", "/").replace("−", "-").strip()


def evaluate(expr: str) -> Evaluated | None:
    """The exact value and the literals of an arithmetic expression, or None if it is not a safe one."""
    expr = _normalise(expr)
    if not expr or len(expr) > MAX_CHARS or not _ALLOWED.fullmatch(expr):
        return None
    depth = 0
    for ch in expr:  # checked before ast.parse, whose recursion deep nesting would exhaust
        depth += (ch == "(") - (ch == ")")
        if depth > MAX_PAREN_DEPTH or depth < 0:
            return None
    if depth:
        return None
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    numbers: list[int] = []
    nodes = 0

    def walk(node: ast.AST) -> Fraction:
        nonlocal nodes
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError("too many nodes")
        if isinstance(node, ast.Constant) and type(node.value) is int:
            if node.value > MAX_MAGNITUDE:
                raise ValueError("literal too large")
            numbers.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Div) and right == 0:
                raise ValueError("division by zero")
            out = _OPS[type(node.op)](left, right)
            if abs(out.numerator) > MAX_MAGNITUDE or out.denominator > MAX_MAGNITUDE:
                raise ValueError("intermediate too large")
            return out
        raise ValueError(f"disallowed node {type(node).__name__}")

    try:
        value = walk(tree.body)
    except (ValueError, RecursionError, ZeroDivisionError):
        return None
    return Evaluated(value, tuple(numbers))


def uses_at_most_once(used: tuple[int, ...], available: tuple[int, ...]) -> bool:
    """True when every literal in `used` comes from `available`, each available number used at most once."""
    pool = list(available)
    for n in used:
        if n not in pool:
            return False
        pool.remove(n)
    return True
