"""STAT's four teacher prompts (paper App. C.3, in our own words, same structure and tags) and the parsers of
what a teacher writes back.

Teacher output is untrusted text: every parser reads a bounded tail through `tasks.answer.last_tag` (linear-time,
size-capped), never raises, and records what happened in a `Counter` under `<op>/<outcome>` so a run shows how
much of its teacher's output was usable (`label/parsed`, `label/normalised`, `label/out_of_catalogue_dropped`,
`judge/no_verdict`, `solve/no_answer`, ...).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from typing import Sequence

from skillexp.tasks.answer import last_boxed, last_tag
from skillexp.tasks.base import Item
from skillexp.teachers.base import Judgement, SkillCatalogue

MAX_SKILL_LIST_CHARS = 4_000  # a longer "list" is not a list of at most a few skill names
MAX_LIST_ITEMS = 32  # pieces of one list looked at; the rest is counted as over the cap
MAX_QUESTION_CHARS = 8_000
MAX_REASON_CHARS = 4_000
SOLUTION_HEAD, SOLUTION_TAIL = 4_000, 8_000  # of a student solution shown to the judge (its end holds the answer)
JUDGE_MAX_SKILLS = 5  # the paper asks for no cap and observes 2-3 per question; 5 bounds a rambling judge

_SPLIT = re.compile(r"[,;\n|]")
_BULLET = re.compile(r"^\s{0,8}(?:[-*\u2022]|[0-9]{1,2}[.)])\s{0,8}")
_NEGATIVE = re.compile(r"\b(?:incorrect|wrong|false|invalid|not\s{1,4}correct)\b", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(?:correct|right|true|valid)\b", re.IGNORECASE)


def _skill_list(skills: Sequence[str]) -> str:
    return json.dumps(list(skills), ensure_ascii=False)


def label_messages(item: Item, skills: Sequence[str], max_skills: int) -> list[dict[str, str]]:
    """Which catalogue skills a question needs (STAT C.3.1: the Skill-Map labels)."""
    return [{"role": "user", "content": (
        "[TASK] You will be given a problem. Write (1) <skill> the skill(s), at most "
        f"{max_skills}, that solving it requires, separated by commas </skill> and then (2) <reason> why these "
        "skills are needed </reason>.\n"
        f"[SKILL LIST] Pick skills only from this list, spelled as written: {_skill_list(skills)}\n"
        f"[QUESTION] {item.question}\n"
        "[SKILLS AND REASON]")}]


def _clip_solution(solution: str) -> str:
    if len(solution) <= SOLUTION_HEAD + SOLUTION_TAIL:
        return solution
    return f"{solution[:SOLUTION_HEAD]}\n[... middle of the solution omitted ...]\n{solution[-SOLUTION_TAIL:]}"


def judge_messages(item: Item, solution: str, skills: Sequence[str]) -> list[dict[str, str]]:
    """Verdict on a student's solution and the skills it lacks (STAT C.3.2: the Missing-Skill-Profile)."""
    return [{"role": "user", "content": (
        "[TASK] You will be given a problem and a step-by-step solution written by a small language model. Write "
        "(1) <judge> whether the solution is correct or incorrect </judge>, (2) <reason> if it is incorrect, what "
        "goes wrong </reason>, and (3) <skill> the skill(s) the model should improve to solve it correctly, "
        "separated by commas </skill>.\n"
        f"[SKILL LIST] Pick skills only from this list, spelled as written: {_skill_list(skills)}\n"
        f"[QUESTION] {item.question}\n"
        f"[MODEL SOLUTION] {_clip_solution(solution)}\n"
        "[YOUR JUDGEMENT, REASON AND SKILLS]")}]


def propose_messages(examples: Sequence[tuple[str, str]], skill: str) -> list[dict[str, str]]:
    """A new question stressing `skill`, from (question, solution) examples (STAT C.3.3: STAT-Syn); with no skill,
    a new question like the examples (Embed-Syn)."""
    shown = "\n".join(f"[QUESTION {i}] {q}\n[SOLUTION {i}] {s}" for i, (q, s) in enumerate(examples, 1))
    if not skill:
        return [{"role": "user", "content": (
            f"[TASK] You will be given {len(examples)} example problems with their solutions. Write a new, original "
            "problem that needs the same kind of reasoning. The new problem must not be a close copy of any example: "
            "renaming variables or changing the numbers of an example is not allowed. It should be about as hard as "
            "the examples and have a single, checkable final answer. Write (1) <reason> what the examples have in "
            "common </reason>, (2) <draft> how you will design a new problem like them </draft>, and (3) "
            "<question> the new problem, stated completely </question>.\n"
            f"{shown}")}]
    return [{"role": "user", "content": (
        f"[TASK] You will be given {len(examples)} example problems with their solutions. Write a new, original "
        f"problem that exercises the skill [{skill}]. The new problem must not be a close copy of any example: "
        "renaming variables or changing the numbers of an example is not allowed. It should be about as hard as "
        "the examples and have a single, checkable final answer. Write (1) <reason> how the examples use "
        f"[{skill}] </reason>, (2) <draft> how you will design a new problem that needs [{skill}] </draft>, and "
        "(3) <question> the new problem, stated completely </question>.\n"
        f"{shown}\n"
        f"[SKILL] {skill}")}]


def solve_messages(item: Item, hint: str = "") -> list[dict[str, str]]:
    """A worked solution whose final answer our tasks can read (the `<answer>` tag); `hint` says what kind of
    answer the task wants, e.g. " (your equation)"."""
    return [{"role": "user", "content": (
        f"Solve the following problem. Reason step by step, then end with the final answer{hint} alone inside "
        f"<answer></answer> tags.\n\n{item.question}")}]


def _pieces(raw: str) -> list[str]:
    out = []
    for piece in _SPLIT.split(raw[:MAX_SKILL_LIST_CHARS]):
        piece = _BULLET.sub("", piece).strip(" \t\"'`[](){}.:")
        if piece:
            out.append(piece)
    return out


def parse_skills(text: str | None, item: Item, catalogue: SkillCatalogue, max_skills: int, op: str,
                 counts: Counter[str]) -> list[str] | None:
    """Catalogue names in the last `<skill>` span, normalised, deduplicated, in order, at most `max_skills`.
    None when there is no readable span at all (counted `<op>/unparsable`)."""
    raw = last_tag(text, "skill", MAX_SKILL_LIST_CHARS)
    if raw is None:
        counts[f"{op}/unparsable"] += 1
        return None
    counts[f"{op}/parsed"] += 1
    pieces = _pieces(raw)
    if len(pieces) > MAX_LIST_ITEMS:
        counts[f"{op}/over_max_dropped"] += len(pieces) - MAX_LIST_ITEMS
        pieces = pieces[:MAX_LIST_ITEMS]
    found: list[str] = []
    for piece in pieces:
        name = catalogue.normalise(piece, item)
        if name is None:
            counts[f"{op}/out_of_catalogue_dropped"] += 1
        elif name in found:
            counts[f"{op}/duplicate_dropped"] += 1
        elif len(found) >= max_skills:
            counts[f"{op}/over_max_dropped"] += 1
        else:
            counts[f"{op}/exact" if catalogue.key(piece) == catalogue.key(name) else f"{op}/normalised"] += 1
            found.append(name)
    if not found:
        counts[f"{op}/no_valid_skill"] += 1
    return found


def parse_verdict(text: str | None) -> bool | None:
    """The `<judge>` span read as correct (True) / incorrect (False); negatives win ("not correct")."""
    raw = last_tag(text, "judge", MAX_REASON_CHARS)
    if raw is None:
        return None
    raw = raw[:500]
    if _NEGATIVE.search(raw):
        return False
    return True if _POSITIVE.search(raw) else None


def parse_judgement(text: str | None, item: Item, catalogue: SkillCatalogue, counts: Counter[str]) -> Judgement:
    correct = parse_verdict(text)
    counts["judge/no_verdict" if correct is None else f"judge/verdict_{'correct' if correct else 'incorrect'}"] += 1
    skills = parse_skills(text, item, catalogue, JUDGE_MAX_SKILLS, "judge", counts) or []
    return Judgement(correct=correct, skills=skills, reason=last_tag(text, "reason", MAX_REASON_CHARS) or "")


def parse_question(text: str | None, counts: Counter[str]) -> tuple[str, str] | None:
    """(question, draft) from a proposal, or None when it has no usable `<question>` span."""
    question = last_tag(text, "question", MAX_QUESTION_CHARS)
    if not question:
        counts["propose/unparsable"] += 1
        return None
    counts["propose/parsed"] += 1
    return question, last_tag(text, "draft", MAX_REASON_CHARS) or ""


def question_id(question: str) -> str:
    """A stable id for a proposed question, so re-runs name the same question the same way."""
    return "syn-" + hashlib.sha1(question.encode("utf-8", "replace")).hexdigest()[:12]


def parse_answer(text: str | None, counts: Counter[str]) -> str | None:
    """The final answer of a teacher's solution: the last `<answer>` span, else the last `\\boxed{}` (MATH
    teachers write it out of habit), else None."""
    answer = last_tag(text)
    if answer:
        counts["solve/tagged"] += 1
        return answer
    answer = last_boxed(text)
    if answer:
        counts["solve/boxed"] += 1
        return answer
    counts["solve/no_answer"] += 1
    return None
