"""A programmatic Countdown teacher: STAT's four teacher operations, computed exactly from expressions.

Skills are read off an expression's syntax tree (`safe_arith.parse`: bounded, never `eval`), so the oracle is a
noiseless stand-in for an LLM teacher that lets the whole STAT pipeline run, and be tested, on the CPU:
- `label_skills`: the catalogue skills the reference expression shows (`item.answer`).
- `judge`: the task checker decides correctness. A wrong attempt misses the skills the reference shows and the
  attempt does not (all of them when no expression can be read from it); a correct attempt misses none. A wrong
  attempt that shows every skill the reference shows gets no skill (counted `judge_no_missing_skill`): the oracle
  names only what it can see is missing, it does not guess.
- `propose`: new items from the task's own generator (same number ranges, as many numbers as the examples) whose
  reference shows the skill and where the skill is *needed*: every solution an exhaustive search finds shows it.
  Past the search budget (5-6 numbers) the reference alone decides, counted `propose_unverified`. With no skill
  (Embed-Syn's proposals), any new item of the examples' size.
- `solve`: distinct solutions from the same search, the reference first, then those sharing most of its skills
  (a rewrite keeps the original's method), in the reference's format.
The search covers the generator's space: each number at most once, integer non-negative intermediates.
"""
from __future__ import annotations

import ast
import hashlib
import operator
import random
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Sequence

from skillexp.tasks.base import Item, Task
from skillexp.tasks.countdown import CountdownTask, random_solution
from skillexp.tasks.safe_arith import parse
from skillexp.teachers.base import Judgement, Proposal, SkillCatalogue, Teacher

CATALOGUE = CountdownTask.skill_catalogue
SEARCH_BUDGET = 50_000  # search states; 4 numbers need ~3k, 5 numbers ~135k
MAX_SOLUTIONS = 2_000
PROPOSE_TRIES = 3_000  # random items drawn per proposal before giving up (division is needed in ~1% of 3-number items)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_OP_SKILL = {ast.Add: "addition", ast.Sub: "subtraction", ast.Mult: "multiplication", ast.Div: "division"}
_PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2}


def expression_skills(expr: str) -> set[str] | None:
    """The skills an expression shows (see data/skills/countdown.json; an optional `= rhs` is ignored), or None
    when it is not a safe arithmetic expression."""
    tree = parse(expr.partition("=")[0])
    if tree is None:
        return None
    skills: set[str] = set()
    values: list[Fraction] = []  # every operation's result, post-order: the root's comes last
    literals: list[int] = []
    root = _visit(tree, skills, values, literals)
    if skills & {"addition", "subtraction"} and skills & {"multiplication", "division"}:
        skills.add("operation_order")
    if any(v > root for v in values[:-1]):
        skills.add("large_intermediate")
    if root > sum(literals):
        skills.add("large_target")
    return skills


def _visit(node: ast.expr, skills: set[str], values: list[Fraction], literals: list[int]) -> Fraction:
    if isinstance(node, ast.Constant):  # parse() admits only int constants and binary + - * /
        literals.append(node.value)
        return Fraction(node.value)
    assert isinstance(node, ast.BinOp)
    op = type(node.op)
    left = _visit(node.left, skills, values, literals)
    right = _visit(node.right, skills, values, literals)
    skills.add(_OP_SKILL[op])
    for child, is_right in ((node.left, False), (node.right, True)):
        if isinstance(child, ast.BinOp):
            inner = _PRECEDENCE[type(child.op)]
            if inner < _PRECEDENCE[op] or (is_right and inner == _PRECEDENCE[op] and op in (ast.Sub, ast.Div)):
                skills.add("parenthesised_grouping")
    values.append(_OPS[op](left, right))
    return values[-1]


@dataclass
class Search:
    solutions: list[str]
    complete: bool  # False: the budget ran out, so `solutions` may miss some


def search(numbers: Sequence[int], target: int, budget: int = SEARCH_BUDGET) -> Search:
    """Expressions over a sub-multiset of `numbers` that reach `target`, written as the task's generator writes
    them (larger operand first, every compound operand in parentheses), so a reference is found as itself."""
    found: dict[str, None] = {str(n): None for n in numbers if n == target}
    states = [budget]

    def visit(terms: list[tuple[str, int]]) -> bool:
        states[0] -= 1
        if states[0] < 0 or len(found) >= MAX_SOLUTIONS:
            return False
        for i in range(len(terms)):
            for j in range(i + 1, len(terms)):
                (ea, a), (eb, b) = sorted((terms[i], terms[j]), key=lambda t: -t[1])
                rest = terms[:i] + terms[i + 1:j] + terms[j + 1:]
                for op, value in _combine(a, b):
                    expr = f"{_wrap(ea)} {op} {_wrap(eb)}"
                    if value == target:
                        found[expr] = None
                    if rest and not visit([*rest, (expr, value)]):
                        return False
        return True

    complete = visit([(str(n), n) for n in numbers])
    return Search(list(found), complete)


def _combine(a: int, b: int) -> list[tuple[str, int]]:
    """Operations on a >= b that keep intermediates integer and non-negative."""
    out = [("+", a + b), ("-", a - b), ("*", a * b)]
    return out + [("/", a // b)] if b and a % b == 0 else out


def _wrap(expr: str) -> str:
    return expr if expr.isdigit() else f"({expr})"


class OracleTeacher(Teacher):
    """STAT's teacher for Countdown, exact; `counts` tallies what could not be done as asked."""

    def __init__(self, task: CountdownTask, budget: int = SEARCH_BUDGET, tries: int = PROPOSE_TRIES):
        super().__init__()
        self.task, self.budget, self.tries = task, budget, tries
        self.skills = set(SkillCatalogue.load(CATALOGUE).subjects["default"])

    def label_skills(self, items: Sequence[Item], catalogue: SkillCatalogue, max_skills: int = 5) -> list[list[str]]:
        out = []
        for item in items:
            shown = expression_skills(item.answer)
            if shown is None:
                self.counts["label_unparsable_reference"] += 1
                out.append([])
                continue
            names = [s for s in catalogue.skills(item) if s in shown]
            self.counts["label_outside_catalogue"] += len(shown) - len(names)
            self.counts["label_capped"] += len(names) > max_skills
            out.append(names[:max_skills])
        return out

    def judge(self, items: Sequence[Item], solutions: Sequence[str], catalogue: SkillCatalogue) -> list[Judgement]:
        out = []
        for item, text in zip(items, solutions, strict=True):
            answer = self.task.extract(text)
            correct = answer is not None and self.task.check(item, answer)
            needed = expression_skills(item.answer) or set()
            shown = expression_skills(answer) if answer is not None else None
            if shown is None:
                self.counts["judge_attempt_unreadable"] += 1
            missing = [] if correct else [s for s in catalogue.skills(item) if s in needed - (shown or set())]
            self.counts["judge_correct" if correct else "judge_incorrect"] += 1
            self.counts["judge_no_missing_skill"] += not correct and not missing
            reason = (f"the attempt is {'correct' if correct else 'incorrect'}; the reference shows "
                      f"{sorted(needed)}, the attempt {sorted(shown) if shown is not None else 'no expression'}")
            out.append(Judgement(correct, missing, reason))
        return out

    def propose(self, examples: Sequence[Sequence[Item]], skills: Sequence[str], n: int = 1,
                seed: int = 0) -> list[list[Proposal]]:
        return [self._propose(group, skill, n, random.Random(f"oracle-propose-{seed}-{i}-{skill}"))
                for i, (group, skill) in enumerate(zip(examples, skills, strict=True))]

    def _propose(self, group: Sequence[Item], skill: str, n: int, rng: random.Random) -> list[Proposal]:
        if skill and skill not in self.skills:  # no skill (Embed-Syn): any new item of the examples' size
            self.counts["propose_unknown_skill"] += 1
            return []
        c = self.task.cfg
        sizes = [len(it.meta["numbers"]) for it in group if "numbers" in it.meta] or [c.num_numbers]
        seen = {(tuple(sorted(it.meta["numbers"])), it.meta["target"]) for it in group if "numbers" in it.meta}
        out: list[Proposal] = []
        for _ in range(self.tries):
            if len(out) == n:
                break
            numbers = [rng.randint(c.min_number, c.max_number) for _ in range(rng.choice(sizes))]
            expr, target = random_solution(rng, numbers)
            key = (tuple(sorted(numbers)), target)
            if not c.min_target <= target <= c.max_target or target in numbers or key in seen:
                continue
            if skill and skill not in (expression_skills(expr) or ()):
                continue
            found = search(numbers, target, self.budget)
            if skill and found.complete and not all(skill in (expression_skills(s) or ()) for s in found.solutions):
                continue
            self.counts["propose_unverified"] += not found.complete
            seen.add(key)
            question = CountdownTask.question(numbers, target)
            item = Item(id=f"{self.task.name}-oracle-{hashlib.sha1(question.encode()).hexdigest()[:12]}",
                        question=question, answer=expr, meta={"numbers": numbers, "target": target})
            why = ("like the examples" if not skill else "every solution shows it" if found.complete
                   else "the reference shows it (search incomplete)")
            out.append(Proposal(item, skill, draft=f"{skill}: {why}"))
        self.counts["proposed"] += len(out)
        self.counts["propose_short"] += n - len(out)
        return out

    def solve(self, items: Sequence[Item], n: int = 1, seed: int = 0) -> list[list[str]]:
        out = []
        for item in items:
            if not {"numbers", "target"} <= set(item.meta):
                self.counts["solve_not_countdown"] += 1
                out.append([])
                continue
            found = [s for s in search(item.meta["numbers"], item.meta["target"], self.budget).solutions
                     if self.task.check(item, s)]  # the checker's size bounds
            reference = expression_skills(item.answer) or set()
            random.Random(f"oracle-solve-{seed}-{item.id}").shuffle(found)
            found.sort(key=lambda s: (s != item.answer, -len(reference & (expression_skills(s) or set()))))
            if not found:
                self.counts["solve_failed"] += 1
                out.append([])
                continue
            self.counts["solve_repeated"] += max(0, n - len(found))
            out.append([self.task.reference_solution(replace(item, answer=found[j % len(found)])) for j in range(n)])
        return out


    def complete(self, conversations: Sequence[Sequence[dict[str, str]]], n: int = 1, seed: int = 0,
                 temperature: float = 0.6, max_tokens: int = 16384, op: str = "trace") -> list[list[str]]:
        """Worked traces for the Countdown question the last user turn states (read from its wording): a rejected
        first try when there is one, the search's solutions, each checked out loud, and the answer in the task's
        format. A turn that states no Countdown question gets no trace (counted `<op>_not_countdown`)."""
        out = []
        for conv in conversations:
            text = next((m["content"] for m in reversed(conv) if m.get("role") == "user"), "")
            item = self.task.read_question(Item(f"oracle-{hashlib.sha256(text.encode()).hexdigest()[:12]}", text, ""))
            if not {"numbers", "target"} <= set(item.meta):
                self.counts[f"{op}_not_countdown"] += 1
                out.append([])
                continue
            numbers, target = item.meta["numbers"], item.meta["target"]
            found = [s for s in search(numbers, target, self.budget).solutions if self.task.check(item, s)]
            if not found:
                self.counts[f"{op}_failed"] += 1
                out.append([])
                continue
            rng = random.Random(f"oracle-trace-{seed}-{item.id}")
            out.append([worked_trace(numbers, target, found[rng.randrange(len(found))], rng) for _ in range(n)])
        return out


def worked_trace(numbers: Sequence[int], target: int, solution: str, rng: random.Random) -> str:
    """A short reasoning trace that reaches `solution`: the problem restated, a first try that misses (a sum or
    product of two numbers, when it is not the target), the solution checked, the answer in <answer> tags."""
    a, b = rng.sample(list(numbers), 2)
    miss = next((f"{e} = {v}" for e, v in ((f"{a} + {b}", a + b), (f"{a} * {b}", a * b)) if v != target), None)
    lines = [f"The numbers are {list(numbers)} and the target is {target}; each number may be used at most once."]
    if miss:
        lines.append(f"First try: {miss}, which is not {target}. Wait, that does not work; let me combine them "
                     "differently.")
    lines.append(f"Trying {solution}: that evaluates to {target}, and it uses each number at most once.")
    lines.append(f"Checking again: {solution} = {target}. Correct.")
    return "<think>\n" + "\n".join(lines) + "\n</think>\n\n<answer>" + solution + "</answer>"


def oracle_teacher(task: Task) -> OracleTeacher:
    """`teacher=oracle`: exact skills for Countdown; other tasks need an LLM teacher."""
    if not isinstance(task, CountdownTask):
        raise ValueError(f"teacher=oracle knows only Countdown, not task {task.name!r}: use an LLM teacher "
                         "(teacher=openai or teacher=local) for this task.")
    return OracleTeacher(task)
