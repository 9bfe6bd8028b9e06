"""The four prompt variants SkillFactory samples its base model with (paper App. E.2), for any task, and the
`instruction` prompt of its Instruction Prompt ablation (App. C: RL alone, with a prompt that describes the
attempt / reflect / retry format instead of SFT teaching it).

`original` in the paper is only "Let's think step by step."; we add the answer-tag instruction so that a model
that was never shown the format has a chance to use it, and every task is graded on the same tags. A task whose
answers go in `\\boxed{}` (`answer_format: boxed`, STAT's math) is posed with the same words ending in "within
\\boxed{}", and `original` is then STAT's harness prompt (tasks/answer.py holds both formats). The paper does
not print its instruction prompt (its verl fork's verbose template is the likely one); ours names the same tags as
SkillFactory's traces (traces/format.py), in words a reader can check.

SkillFactory's OpenThoughts data (paper App. E.4-E.5) adds "rationalization" variants: the same prompts with the
gold answer in context as a hint the model is told not to mention (`<variant>_hint`, SAMPLING_VARIANTS; the paper
does not print their wording, ours is HINT). They exist for sampling solutions only: rl.prompt and eval.prompt
cannot name them, reflections are never posed with a hint, and SkillFactory stores every SFT row under the
un-hinted prompt, so the student never sees a gold answer in its input.
"""
from __future__ import annotations

from typing import Literal, get_args

from skillexp.tasks.answer import ANSWER_FORMATS, AnswerFormat

VARIANTS = ("original", "plan_and_execute", "alternatively", "rephrase")  # SkillFactory's sampling prompts
HINT_SUFFIX = "_hint"
HINT_VARIANTS = tuple(v + HINT_SUFFIX for v in VARIANTS)  # the rationalization variants (OpenThoughts, App. E.5)
SAMPLING_VARIANTS = VARIANTS + HINT_VARIANTS  # what method.skillfactory.prompt_variants may name
# appended to a hint variant's user turn; a response that says "hint" anyway is dropped (methods/skillfactory)
HINT = ("Hint: the correct {answer_type} is {answer}. Use it to guide your reasoning, but do not mention this hint "
        "or that you were given the answer anywhere in your response: solve the question as if you had found the "
        "answer on your own.")
# what a run may pose its questions with (rl.prompt, eval.prompt)
Prompt = Literal["original", "plan_and_execute", "alternatively", "rephrase", "instruction"]
PROMPTS = get_args(Prompt)

# the variants' words around the answer's place; {slot}, {system_slot} and {always_end} come from the task's
# answer format (tasks/answer.py), which the grader reads by
_USER_SUFFIX = {
    "plan_and_execute": (
        "To solve this question, write a high level plan you intend to use starting with \"First, I'll try to "
        "understand the problem better by writing out a plan and go really deep into detail about how I should "
        "solve this,\" then execute that plan (whatever reasoning is required), then give your resulting "
        "{answer_type} {slot_one}."),
    "alternatively": (
        "Think step by step and find some potential answers using the word \"Alternatively,\" to distinguish them "
        "when you are discussing if they are correct, then give your resulting {answer_type} {slot}."),
    "rephrase": (
        "Begin your response with \"Rewritten Question: \" and by rewriting the question making it contain only "
        "what is needed to solve it, then think step by step and then give your resulting {answer_type} {slot}."),
    "instruction": (
        "Think step by step. Write each attempt at a solution inside <sample></sample> tags, ending it with its "
        "answer in <answer></answer> tags. After each attempt, check it inside <reflect></reflect> tags and end the "
        "check with <verdict>Correct</verdict> or <verdict>Incorrect</verdict>. If the verdict is Incorrect, make "
        "a new attempt the same way. When an attempt is verified correct (or you have no better one), give your "
        "resulting {answer_type} once more as the final answer {place}."),
}
_SYSTEM = {
    "original": None,
    "plan_and_execute": (
        "You like to solve problems by understanding the problem, writing a plan, executing the plan, then giving "
        "an answer. Write a plan that when reasoned over would solve the question then give your answer "
        "{system_bare}. {always_end}"),
    "alternatively": (
        "You like to find multiple answers for a question then deliberate over them saying \"Alternatively,\" "
        "between each answer you are deliberating on and then you give your final answer {system_slot}. "
        "{always_end}"),
    "rephrase": (
        "You answer questions by saying \"Rewritten Question: \" then rewriting the question to only contain what "
        "is needed to solve it and then think step by step and then you give your final answer {system_slot}. "
        "{always_end}"),
    "instruction": None,
}


def build_messages(question: str, answer_type: str, variant: str = "original",
                   answer_format: AnswerFormat = ANSWER_FORMATS["tag"]) -> list[dict[str, str]]:
    """Chat messages that pose `question` under one of the PROMPTS, asking for the answer where `answer_format`
    says (where the task's grader reads it)."""
    if variant not in PROMPTS:
        raise ValueError(f"unknown prompt variant {variant!r}; choose one of {list(PROMPTS)}")
    fmt = answer_format
    words = {"answer_type": answer_type, "slot": fmt.slot, "slot_one": fmt.slot_one, "system_slot": fmt.system,
             "system_bare": fmt.system_bare, "place": fmt.place, "always_end": fmt.always_end}
    suffix = fmt.original.format(**words) if variant == "original" else _USER_SUFFIX[variant].format(**words)
    system = _SYSTEM[variant]
    return ([{"role": "system", "content": system.format(**words)}] if system else []) + [
        {"role": "user", "content": f"{question}\n\n{suffix}"}]


def is_hint(variant: str) -> bool:
    """Does `variant` put the gold answer in the prompt (a rationalization variant)?"""
    return variant.endswith(HINT_SUFFIX)


def with_hint(messages: list[dict[str, str]], answer: str, answer_type: str) -> list[dict[str, str]]:
    """`messages` with the HINT (the gold `answer`) appended to the last user turn."""
    if not str(answer).strip():
        raise ValueError("a hint variant needs the item's gold answer, and this item has none.")
    *head, last = messages
    hint = HINT.format(answer_type=answer_type, answer=str(answer).strip())
    return [*head, {**last, "content": f"{last['content']}\n\n{hint}"}]
