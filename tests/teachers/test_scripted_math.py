"""The scripted teacher's math mode answers each of STAT's four prompts in a form STAT's parsers read: skills of
the prompt's own list, the checker's verdict, new questions it can then solve, the gold answers (wrong ones where
asked, differing between a question's samples), and refuses what it cannot read."""
from __future__ import annotations

from collections import Counter

from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.teachers import prompts
from skillexp.teachers.base import SkillCatalogue
from skillexp.teachers.scripted import ScriptedTeacher
from skillexp.teachers.scripted_math import MathScript

TASK = build_task("math", {})
SCRIPT = MathScript(TASK)
CATALOGUE = SkillCatalogue.load(TASK.skill_catalogue)


def _content(teacher: ScriptedTeacher, messages: list[dict], seed: int = 0) -> str:
    status, payload = teacher.reply({"messages": messages, "seed": seed})
    assert status == 200
    return payload["choices"][0]["message"]["content"]


def test_labels_and_judgements_name_skills_of_the_prompts_list() -> None:
    teacher, counts = ScriptedTeacher(style="plain", math=SCRIPT), Counter()
    for item in TASK.items("train")[:20]:
        skills = CATALOGUE.skills(item)
        label = prompts.parse_skills(_content(teacher, prompts.label_messages(item, skills, 5)), item, CATALOGUE, 5,
                                     "label", counts)
        assert label and len(label) == 2 and set(label) <= set(skills)
        wrong = prompts.parse_judgement(_content(teacher, prompts.judge_messages(item, "<answer>-99999</answer>",
                                                                                 skills)), item, CATALOGUE, counts)
        assert wrong.correct is False and len(wrong.skills) == 2 and set(wrong.skills) <= set(skills)
        right = prompts.parse_judgement(_content(teacher, prompts.judge_messages(
            item, f"<answer>{item.answer}</answer>", skills)), item, CATALOGUE, counts)
        assert right.correct is True and right.skills == []
    assert counts["label/out_of_catalogue_dropped"] == 0


def test_it_solves_known_and_proposed_questions_and_answers_wrongly_where_asked() -> None:
    plain, counts = ScriptedTeacher(style="plain", math=SCRIPT), Counter()
    for item in TASK.items("train")[:20]:
        answer = prompts.parse_answer(_content(plain, prompts.solve_messages(item)), counts)
        assert answer is not None and TASK.check(item, answer)
    examples = [(it.question, TASK.reference_solution(it)) for it in TASK.items("train")[:3]]
    for skill in ("", "algebraic_manipulation_skills"):
        proposal = prompts.parse_question(_content(plain, prompts.propose_messages(examples, skill), seed=3), counts)
        assert proposal is not None and (skill in proposal[0])
        new = Item("new", proposal[0], "")
        reply = prompts.parse_answer(_content(plain, prompts.solve_messages(new)), counts)
        a, b = (int(x) for x in proposal[0].split("$")[1].split(" + "))
        assert reply == str(a + b)
    wrong = ScriptedTeacher(style="plain", math=SCRIPT, wrong_every=2)
    item = TASK.items("train")[0]
    answers = {prompts.parse_answer(_content(wrong, prompts.solve_messages(item), seed=s), counts) for s in range(8)}
    assert item.answer in answers and len(answers) == 2  # the right one and the wrong one, by the sample's seed


def test_a_question_it_does_not_know_is_refused() -> None:
    content = _content(ScriptedTeacher(math=SCRIPT), [{"role": "user", "content": "Solve this.\n\nWhat is love?"}])
    assert "cannot answer" in content and "<answer>" not in content
