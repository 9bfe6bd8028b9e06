"""The phrase lists that join attempts in SkillFactory traces, verbatim from the released data-creation code
(`skill_factory/sft_data_creation.py` at Zayne-sprague/SkillFactory@781cb6b; paper App. E.1 prints the same lists).

Four missing commas in the released lists make Python concatenate neighbouring string literals, fusing 4 correct-glue
phrases into 2 ("…doinng it again just in case.That answer seems fine…") and 2 incorrect-glue phrases into 1
("…a new one.After reconsideration…"). The paper's data was built with the fused lists, so they are the default;
each fused entry is kept as a tuple of its intended phrases, and `fix_phrase_concatenation=True` splits them.
Typos inside phrases ("doinng", "for to be safe") are reproduced as released.
"""
from __future__ import annotations

GENERIC_GLUE: tuple[str, ...] = (
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
)

# One tuple per entry of the released list; a tuple of several phrases is one fused string there.
_CORRECT_GLUE: tuple[tuple[str, ...], ...] = (
    ("This previous answer was correct, but I should double check it to be sure.",),
    ("Let me try this question again to verify that my response is actually correct.",),
    ("My earlier answer seems correct, but I should double-check it to be sure.",),
    # FUSED in the released code (1 missing comma): 2 phrases -> 1 string
    ("That response looks right, and I have verified it. It might be worth doinng it again just in case.",
     "That answer seems fine, but I'd like to double-check for to be safe."),
    ("I believe that was the right answer, but let me make sure.",),
    ("My previous response looks accurate, though I should recheck it.",),
    ("The solution seems right. I will now retry it to be more confident.",),
    # FUSED in the released code (2 missing commas): 3 phrases -> 1 string
    ("Looking back, my earlier answer seems right, though I'll recheck it.",
     "I'm fairly confident the last answer was right, but I'll double-check anyway.",
     "That response looks solid, though I want to be certain."),
    # FUSED in the released code (1 missing comma): 2 phrases -> 1 string
    ("I'm leaning toward my last answer being right, but I'll test it once more.",
     "It's better to be cautious — I'll re-verify my previous answer."),
    ("Seems right to me, but a second look won't hurt.",),
)

_INCORRECT_GLUE: tuple[tuple[str, ...], ...] = (
    ("My previous answer was incorrect. I will now try again.",),
    # FUSED in the released code (1 missing comma): 2 phrases -> 1 string
    ("On review, my last response falls short, so I'll attempt a new one.",
     "After reconsideration, I can see my earlier answer wasn't right, and I'll try again."),
    ("I learned from my mistake in the last answer — let me rework it.",),
    ("I may have missed the mark earlier. Let me rethink and attempt again.",),
    ("Instead of sticking with my incorrect answer, I'll try a new approach.",),
    ("Oops, I see the issue now — time for another try.",),
    ("I realize that wasn't the right answer. Let's fix it.",),
    ("I see the flaw in my earlier response. I'll try a new one.",),
    ("I made an error before, so I'll reconsider and answer again.",),
    ("Oops, that wasn't right. Let me take another shot.",),
    ("Looks like I messed up earlier. I'll go again.",),
    ("Since my earlier answer was incorrect, I'll rework the reasoning and attempt again.",),
    ("My last attempt wasn't correct, but I'll refine it and try again.",),
)

ENDING: tuple[str, ...] = (
    "The final answer is:",
    "Therefore, the solution comes out to:",
    "Hence, the correct answer is:",
    "In conclusion, the answer is:",
    "So after checking, the final result is:",
    "That confirms the final answer is:",
    "Altogether, this gives us:",
)

# Used by the released `*C*IC` format (end on an incorrect attempt, then go back to a correct one); kept for
# completeness of the App. E.1 lists. Missing final periods are as released.
BACKTRACK: tuple[str, ...] = (
    "My current answer is incorrect, but I was able to derive a correct answer in a previous attempt. "
    "Let me revisit my previous work.",
    "I can see that this answer is mistaken, but I had worked out the correct one previously. "
    "I'll revisit that reasoning.",
    "This one's off, but I did have it right in a past try. I'll look back at that.",
    "While this solution fails, a previous attempt succeeded. I should revisit and adapt that earlier work.",
    "This one's wrong, but I had it right earlier. Let's go back.",
    "This response contains errors, but my earlier calculation was correct. I'll retrace those steps",
    "This response doesn't check out, but I remember arriving at the correct one previously. I'll go back to that",
    "Revisiting my earlier solution makes sense here, as my current answer is incorrect.",
    "I know I got it right in a past attempt, but this time I didn't — better revisit what worked",
)

# Used by the released `*CC` format (two correct attempts, then a "verified multiple times" line).
CORRECT_CONFIRM: tuple[str, ...] = (
    "I have received a correct answer and verified it multiple times. I will now provide the final answer.",
    "This solution has been verified thoroughly and is correct, so I'll share the final answer",
    "Here is my final answer, which I have verified multiple times as correct.",
    "I'm ready to provide the final answer, as I've already confirmed it several times.",
    "Checked repeatedly, confirmed correct: this is my final answer.",
    "I've verified this enough to be sure. Here's my final answer.",
    "I double-checked and it holds up — I'll finalize the answer now.",
)


def _resolve(entries: tuple[tuple[str, ...], ...], fix_phrase_concatenation: bool) -> list[str]:
    if fix_phrase_concatenation:
        return [phrase for entry in entries for phrase in entry]
    return ["".join(entry) for entry in entries]


def correct_glue(fix_phrase_concatenation: bool = False) -> list[str]:
    """Glue after a correct attempt (10 strings as released, 14 when the fused ones are split)."""
    return _resolve(_CORRECT_GLUE, fix_phrase_concatenation)


def incorrect_glue(fix_phrase_concatenation: bool = False) -> list[str]:
    """Glue after an incorrect attempt (13 strings as released, 14 when the fused one is split)."""
    return _resolve(_INCORRECT_GLUE, fix_phrase_concatenation)
