"""The scripted teacher's replies on MATH-style questions (`python -m skillexp.teachers.scripted --task math`): STAT's
four prompts (teachers/prompts.py) answered from a math task's own gold answers, so that every STAT method and
its comparison rows run on the CPU against an OpenAI-compatible server.

- label: two skills of the prompt's list, chosen by a hash of the question (the same two every time);
- judge: the task's checker decides the verdict; an incorrect solution misses two skills of the list (hashed);
- propose: a new question "What is $a + b$?" (a, b from a hash of the prompt and the seed), naming the skill;
- solve, and any other prompt that ends with a question it knows: the gold answer (a synthetic sum: its value), in
  `<answer>` tags when the prompt asks for them, else in `\\boxed{}`.
Prompts are read with bounded string operations only; a prompt it cannot read gets None (the server refuses it).
"""
from __future__ import annotations

import hashlib
import json
import random
import re

from skillexp.tasks.answer import last_boxed, last_tag
from skillexp.tasks.base import SPLITS, Item, Task

SUM = re.compile(r"What is \$(\d{1,6}) \+ (\d{1,6})\$\?")
MAX_PROMPT_CHARS = 64_000  # of one prompt looked at


def _hashed(text: str) -> random.Random:
    return random.Random(int(hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16], 16))


def _between(text: str, start: str, end: str) -> str:
    return text.partition(start)[2].partition(end)[0].strip()


class MathScript:
    """`reply(prompt, seed) -> (reasoning, content) | None`; `answer_of(prompt)`: the gold answer it would give."""

    def __init__(self, task: Task):
        self.task = task
        self.items: dict[str, Item] = {it.question: it for split in SPLITS for it in task.items(split)}

    def _item(self, prompt: str) -> Item | None:
        question = prompt.rsplit("\n\n", 1)[-1].strip()
        if question in self.items:
            return self.items[question]
        found = SUM.search(question)
        if found:  # a proposed question (ours): its value is its answer
            return Item("scripted-sum", question, str(int(found[1]) + int(found[2])))
        return next((it for q, it in self.items.items() if q in prompt), None)

    def answer_of(self, prompt: str) -> str | None:
        item = self._item(prompt[-MAX_PROMPT_CHARS:])
        return None if item is None else item.answer

    def reply(self, prompt: str, seed: int) -> tuple[str, str] | None:
        prompt = prompt[:MAX_PROMPT_CHARS]
        if "[SKILL LIST]" in prompt:
            try:
                skills = json.loads(_between(prompt, "spelled as written: ", "\n"))
            except ValueError:
                return None
            question = _between(prompt, "[QUESTION] ", "\n[")
            if not isinstance(skills, list) or not skills:
                return None
            if "[MODEL SOLUTION]" in prompt:
                return "", self._judge(question, _between(prompt, "[MODEL SOLUTION] ", "\n[YOUR JUDGEMENT"), skills)
            picked = _hashed("label:" + question).sample(skills, min(2, len(skills)))
            return "", f"<skill>{', '.join(map(str, picked))}</skill><reason>the question needs them</reason>"
        if "example problems with their solutions" in prompt:
            skill = prompt.rsplit("[SKILL] ", 1)[1].strip() if "[SKILL] " in prompt else ""
            rng = _hashed(f"propose:{seed}:{prompt}")
            question = f"What is ${rng.randint(10, 999)} + {rng.randint(10, 999)}$?"
            lead = f"Using {skill}: " if skill else ""
            return "", (f"<reason>the examples add numbers</reason><draft>a new sum</draft>"
                        f"<question>{lead}{question}</question>")
        answer = self.answer_of(prompt)
        if answer is None:
            return None
        final = f"<answer>{answer}</answer>" if "<answer>" in prompt else f"$\\boxed{{{answer}}}$"
        return "Read the question, work it through step by step, then check the result.", f"So the answer is {final}"

    def _judge(self, question: str, solution: str, skills: list) -> str:
        item = self.items.get(question)
        answer = last_tag(solution) or last_boxed(solution)
        if item is not None and answer is not None and self.task.check(item, answer):
            return "<judge>Correct</judge><reason>the answer checks</reason><skill></skill>"
        missed = _hashed("judge:" + question).sample(skills, min(2, len(skills)))
        return f"<judge>Incorrect</judge><reason>a slip</reason><skill>{', '.join(map(str, missed))}</skill>"

    @staticmethod
    def wrong(content: str) -> str:
        """`content` with its final answer replaced by a wrong one."""
        if "<answer>" in content:
            return content[: content.rindex("<answer>")] + "<answer>-1234567</answer>"
        return content.rsplit("$\\boxed{", 1)[0] + "$\\boxed{-1234567}$"
