"""Exact evaluation of untrusted arithmetic without `eval`: an AST walk over a whitelist, bounded everywhere.

Only non-negative integer literals and the binary operators + - * / are accepted: no unary minus (the Countdown
numbers are positive and negation is not one of the four operations), no powers, names, calls, floats or
subscripts. Values are `Fraction`s, so 6 / 4 * 2 == 3 exactly. Before `ast.parse` runs (it can recurse deeply
and raise on pathological nesting) the text is checked for length, an ASCII-only alphabet (so fullwidth or
Arabic-Indic digits are refused) and parenthesis depth; during the walk the node count and the size of every
numerator and denominator are bounded. No input can make it slow, large or raise: every failure returns None.
"""
from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable

MAX_CHARS = 256  # a 6-number answer with spaces and parentheses needs < 80
MAX_PAREN_DEPTH = 16
MAX_NODES = 64  # a full expression over 8 numbers has 15
MAX_MAGNITUDE = 10**15  # bound on |numerator| and denominator of every literal and intermediate
_ALLOWED = re.compile(r"[0-9+\-*/() \t\r\n]*")  # a str pattern's [0-9] is ASCII-only
_UNICODE_OPS = str.maketrans({"×": "*", "÷": "/", "−": "-", "·": "*"})
_OPS: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


class _Reject(Exception):
    """The expression is outside the whitelist or its bounds."""


@dataclass(frozen=True)
class Evaluated:
    value: Fraction
    numbers: tuple[int, ...]  # the integer literals used, in order of appearance


def _walk(node: ast.AST, numbers: list[int], budget: list[int]) -> Fraction:
    budget[0] -= 1
    if budget[0] < 0:
        raise _Reject("too many nodes")
    if isinstance(node, ast.Constant) and type(node.value) is int:  # not bool, float or complex
        if node.value > MAX_MAGNITUDE:
            raise _Reject("literal too large")
        numbers.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left = _walk(node.left, numbers, budget)
        right = _walk(node.right, numbers, budget)
        if isinstance(node.op, ast.Div) and right == 0:
            raise _Reject("division by zero")
        out = _OPS[type(node.op)](left, right)
        if abs(out.numerator) > MAX_MAGNITUDE or out.denominator > MAX_MAGNITUDE:
            raise _Reject("intermediate too large")
        return out
    raise _Reject(f"disallowed node {type(node).__name__}")


def _checked(expr: object) -> tuple[ast.expr, Evaluated] | None:
    if not isinstance(expr, str) or len(expr) > MAX_CHARS:
        return None
    expr = expr.translate(_UNICODE_OPS).strip()
    if not expr or not _ALLOWED.fullmatch(expr):
        return None
    depth = 0
    for ch in expr:
        depth += (ch == "(") - (ch == ")")
        if not 0 <= depth <= MAX_PAREN_DEPTH:
            return None
    if depth:
        return None
    numbers: list[int] = []
    try:
        tree = ast.parse(expr, mode="eval")
        value = _walk(tree.body, numbers, [MAX_NODES])
    except Exception:  # noqa: BLE001 - SyntaxError, _Reject, and anything else the parser may raise on junk
        return None
    return tree.body, Evaluated(value, tuple(numbers))


def evaluate(expr: object) -> Evaluated | None:
    """The exact value and the literals of an arithmetic expression, or None if it is not a safe one."""
    checked = _checked(expr)
    return None if checked is None else checked[1]


def parse(expr: object) -> ast.expr | None:
    """The syntax tree of a safe expression (every bound of `evaluate` checked; only integer constants and binary
    + - * / nodes, no division by zero), for callers that read its structure, or None."""
    checked = _checked(expr)
    return None if checked is None else checked[0]


def uses_at_most_once(used: Iterable[int], available: Iterable[int]) -> bool:
    """True when `used` is a sub-multiset of `available`: each given number used at most once."""
    return not Counter(used) - Counter(available)
