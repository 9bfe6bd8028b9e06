"""The four prompt variants SkillFactory samples its base model with (paper App. E.2), for any task, and the
`instruction` prompt of its Instruction Prompt ablation (App. C: RL alone, with a prompt that describes the
attempt / reflect / retry format instead of SFT teaching it).

`original` in the paper is only "Let's think step by step."; we add the answer-tag instruction so that a model
that was never shown the format has a chance to use it, and every task is graded on the same tags. The paper does
not print its instruction prompt (its verl fork's verbose template is the likely one); ours names the same tags as
SkillFactory's traces (methods/skillfactory/trace_format.py), in words a reader can check.
"""
from __future__ import annotations

from typing import Literal, get_args

VARIANTS = ("original", "plan_and_execute", "alternatively", "rephrase")  # SkillFactory's sampling prompts
# what a run may pose its questions with (rl.prompt, eval.prompt)
Prompt = Literal["original", "plan_and_execute", "alternatively", "rephrase", "instruction"]
PROMPTS = get_args(Prompt)
ALWAYS_END = "You always end with </answer>, you never ever end without giving an answer."

_USER_SUFFIX = {
    "original": (
        "Let's think step by step, then give your resulting {answer_type_str} as the answer in the "
        "\"<answer>(your answer)</answer>\" tags."),
    "plan_and_execute": (
        "To solve this question, write a high level plan you intend to use starting with \"First, I'll try to "
        "understand the problem better by writing out a plan and go really deep into detail about how I should "
        "solve this,\" then execute that plan (whatever reasoning is required), then give your resulting "
        "{answer_type_str} as the answer in the \"<answer>(your answer)</answer>\" tag."),
    "alternatively": (
        "Think step by step and find some potential answers using the word \"Alternatively,\" to distinguish them "
        "when you are discussing if they are correct, then give your resulting {answer_type_str} as the answer in "
        "the \"<answer>(your answer)</answer>\" tags."),
    "rephrase": (
        "Begin your response with \"Rewritten Question: \" and by rewriting the question making it contain only "
        "what is needed to solve it, then think step by step and then give your resulting {answer_type_str} as "
        "the answer in the \"<answer>(your answer)</answer>\" tags."),
    "instruction": (
        "Think step by step. Write each attempt at a solution inside <sample></sample> tags, ending it with its "
        "answer in <answer></answer> tags. After each attempt, check it inside <reflect></reflect> tags and end the "
        "check with <verdict>Correct</verdict> or <verdict>Incorrect</verdict>. If the verdict is Incorrect, make "
        "a new attempt the same way. When an attempt is verified correct (or you have no better one), give your "
        "resulting {answer_type_str} once more as the final answer in the \"<answer>(your answer)</answer>\" "
        "tags."),
}
_SYSTEM = {
    "original": None,
    "plan_and_execute": (
        "You like to solve problems by understanding the problem, writing a plan, executing the plan, then giving "
        "an answer. Write a plan that when reasoned over would solve the question then give your answer in "
        "<answer>(your answer)</answer>. " + ALWAYS_END),
    "alternatively": (
        "You like to find multiple answers for a question then deliberate over them saying \"Alternatively,\" "
        "between each answer you are deliberating on and then you give your final answer in "
        "\"<answer>(your answer)</answer>\". " + ALWAYS_END),
    "rephrase": (
        "You answer questions by saying \"Rewritten Question: \" then rewriting the question to only contain what "
        "is needed to solve it and then think step by step and then you give your final answer in "
        "\"<answer>(your answer)</answer>\". " + ALWAYS_END),
    "instruction": None,
}


def build_messages(question: str, answer_type: str, variant: str = "original") -> list[dict[str, str]]:
    """Chat messages that pose `question` under one of the VARIANTS."""
    if variant not in _USER_SUFFIX:
        raise ValueError(f"unknown prompt variant {variant!r}; choose one of {list(PROMPTS)}")
    user = f"{question}\n\n{_USER_SUFFIX[variant].format(answer_type_str=answer_type)}"
    system = _SYSTEM[variant]
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
