"""The phrase lists that join attempts in SkillFactory traces (paper App. E.1 = the released data-creation code).

Reproduced as the paper's method defines them. Three missing commas in the released lists fuse neighbouring
phrases into one; the fused strings are kept (that is what produced the paper's data), and `split_fused=True`
gives the intended lists instead.
"""
from __future__ import annotations

GENERIC_GLUE = [
    "However, I should double check this answer.",
    "But wait, let me think about it again.",
    "I can resolve this question to be sure.",
    "Let me verify my answer.",
    "I should check my response again.",
    "I can double check my response.",
    "Wait...",
    "Wait! I should double check my answer.",
    "Although, if I want to be absolutely sure, I should do this again.",
    "I'll recheck what I said earlier.",
    "Time to review my response one more time.",
]

# Fused phrases are marked with "|" where the missing comma was.
_CORRECT_GLUE = [
    "This previous answer was correct, but I should double check it to be sure.",
    "Let me try this question again to verify that my response is actually correct.",
    "My earlier answer seems correct, but I should double-check it to be sure.",
    "That response looks right, and I have verified it. It might be worth doinng it again just in case.|"
    "That answer seems fine, but I'd like to double-check for to be safe.",
    "I believe that was the right answer, but let me make sure.",
    "My previous response looks accurate, though I should recheck it.",
    "The solution seems right. I will now retry it to be more confident.",
    "Looking back, my earlier answer seems right, though I'll recheck it.|"
    "I'm fairly confident the last answer was right, but I'll double-check anyway.|"
    "That response looks solid, though I want to be certain.",
    "I'm leaning toward my last answer being right, but I'll test it once more.|"
    "It's better to be cautious — I'll re-verify my previous answer.",
    "Seems right to me, but a second look won't hurt.",
]

_INCORRECT_GLUE = [
    "My previous answer was incorrect. I will now try again.",
    "On review, my last response falls short, so I'll attempt a new one.|"
    "After reconsideration, I can see my earlier answer wasn't right, and I'll try again.",
    "I learned from my mistake in the last answer — let me rework it.",
    "I may have missed the mark earlier. Let me rethink and attempt again.",
    "Instead of sticking with my incorrect answer, I'll try a new approach.",
    "Oops, I see the issue now — time for another try.",
    "I realize that wasn't the right answer. Let's fix it.",
    "I see the flaw in my earlier response. I'll try a new one.",
    "I made an error before, so I'll reconsider and answer again.",
    "Oops, that wasn't right. Let me take another shot.",
    "Looks like I messed up earlier. I'll go again.",
    "Since my earlier answer was incorrect, I'll rework the reasoning and attempt again.",
    "My last attempt wasn't correct, but I'll refine it and try again.",
]

ENDING = [
    "The final answer is:",
    "Therefore, the solution comes out to:",
    "Hence, the correct answer is:",
    "In conclusion, the answer is:",
    "So after checking, the final result is:",
    "That confirms the final answer is:",
    "Altogether, this gives us:",
]


def _resolve(phrases: list[str], split_fused: bool) -> list[str]:
    if split_fused:
        return [part for p in phrases for part in p.split("|")]
    return [p.replace("|", "") for p in phrases]


def correct_glue(split_fused: bool = False) -> list[str]:
    return _resolve(_CORRECT_GLUE, split_fused)


def incorrect_glue(split_fused: bool = False) -> list[str]:
    return _resolve(_INCORRECT_GLUE, split_fused)
