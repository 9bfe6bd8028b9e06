"""`method=stat_sel` / `method=stat_syn`: STAT's pipeline (paper §2), from a student and a teacher to SFT rows.

Every step writes one file in `<stage dir>/stat/` and is skipped when that file exists, so a resumed run asks the
student and the teacher nothing it already has (an API teacher's own cache covers a step killed halfway). A step
in which teacher requests failed (as many as `teacher.max_failed_fraction` tolerates) is used but not written: a
resumed build runs it again, its answered requests come from the teacher's cache, and only the failed ones are sent.
  catalogue.json              the skill catalogue in use
  student_samples.jsonl       the student's samples on the val questions
  difficulty.jsonl            per val question: difficult or not, the solution the teacher judges, the evidence
  skill_map.jsonl             the teacher's skill labels of the training questions
  judgements.jsonl            the teacher's missing skills per difficult question
  missing_skill_profile.json  (and .png) n(s): difficult questions missing each skill
  sel_answers.jsonl           stat_sel: the answers of each drawn question
  syn_proposals.jsonl, syn_solutions.jsonl   stat_syn: proposed questions and the teacher's solutions
The student samples, and is closed, before the teacher is built; the teacher is built only if a step needs it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from skillexp.methods.config import STAT_SEL, SFTDataInputs
from skillexp.methods.stat.difficulty import find_difficult, profiled
from skillexp.methods.stat.profile import judge_rows, profile, profile_stats, save_profile
from skillexp.methods.stat.select import answer_rows, draw, missing_pairs, sel_rows
from skillexp.methods.stat.skills import SkillMap, cached, label_rows
from skillexp.methods.stat.synth import fresh_proposals, proposal_rows, solution_rows, syn_rows
from skillexp.runtime import Runtime
from skillexp.tasks.base import Item, Task
from skillexp.tasks.scoring import ScorePool
from skillexp.teachers import build_teacher
from skillexp.teachers.base import LazyTeacher, SkillCatalogue, Teacher
from skillexp.utils.io import atomic_write_json
from skillexp.utils.schema import ConfigError


def blocked_problems(inputs: SFTDataInputs, task: Task) -> set[str]:
    """Problems synthetic data must not contain: the task's val and test questions, the held-out suite's and the
    questions a continual method profiled."""
    keys = {task.problem_key(it) for split in ("val", "test") for it in task.items(split)}
    if inputs.profile is not None:
        keys |= {task.problem_key(it) for it in profiled(inputs, task)[1]}
    held_out = inputs.held_out
    for name, spec in (held_out.variants if held_out else {}).items():
        variant = spec.build(name=name)
        keys |= {variant.problem_key(it) for it in variant.items(held_out.split)}
    return keys


def build_stat(inputs: SFTDataInputs, task: Task, train: Sequence[Item], out_dir: Path, rt: Runtime,
               make_teacher: Callable[[], Teacher] | None = None) -> tuple[list[dict], dict[str, float]]:
    """The STAT-Sel or STAT-Syn SFT rows for `inputs.method`, and the statistics of every step. The teacher is
    `inputs.teacher`'s, built when a step first needs it (`make_teacher` builds another)."""
    st, prefix, seed = inputs.stat, inputs.method, inputs.seed
    assert st is not None and inputs.teacher is not None and inputs.catalogue is not None
    work = out_dir / "stat"
    catalogue = SkillCatalogue(inputs.catalogue)
    atomic_write_json(work / "catalogue.json", {"source": st.catalogue or "shipped", "subjects": catalogue.subjects})
    if not train:
        raise ConfigError(f"method={prefix} needs train questions (the skill map), and the task has none: raise "
                          "its num_train.")
    teacher = LazyTeacher(make_teacher or (lambda: build_teacher(inputs.teacher, prefix, task, rt.cache_dir, seed)))
    try:
        with rt.scoring.pool() as pool:
            val, difficult, stats = find_difficult(inputs, task, rt, work, pool)
            map_rows = cached(work / "skill_map.jsonl",
                              lambda: label_rows(teacher, train, catalogue, st.max_skills), teacher)
            skill_map = SkillMap(train, map_rows)
            by_id = {it.id: it for it in val}
            judgements = cached(work / "judgements.jsonl", lambda: judge_rows(
                teacher, [by_id[r["id"]] for r in difficult], [r["solution"] for r in difficult], catalogue,
                st.max_missing_skills), teacher)
            freq = profile(judgements)
            stats |= skill_map.stats(prefix) | profile_stats(judgements, freq, prefix)
            save_profile(freq, len(judgements), work, rt.tracker, prefix)
            pairs = missing_pairs(judgements)
            if not pairs:
                raise RuntimeError(f"method={prefix}: the teacher named no missing skill for any of "
                                   f"{len(judgements)} difficult questions (see {work / 'judgements.jsonl'}).")
            stats[f"{prefix}/pairs"] = float(len(pairs))
            stats[f"{prefix}/pairs_without_questions"] = float(sum(not skill_map.questions.get(s) for _, s in pairs))
            if prefix in STAT_SEL:
                rows, more = _select(inputs, task, train, pairs, skill_map, teacher, pool, work)
            else:
                rows, more = _synthesise(inputs, task, pairs, skill_map, teacher, pool, work)
    finally:
        teacher.close()
    stats |= more | teacher.metrics(f"{prefix}/teacher")
    return rows, stats


def _select(inputs: SFTDataInputs, task: Task, train: Sequence[Item], pairs: list[tuple[str, str]], skill_map: SkillMap,
            teacher: Teacher, pool: ScorePool, work: Path) -> tuple[list[dict], dict[str, float]]:
    st, prefix, seed = inputs.stat, inputs.method, inputs.seed
    draws = draw(pairs, skill_map, st.k, seed)
    by_id = {it.id: it for it in train}
    distinct = [by_id[i] for i in dict.fromkeys(d["id"] for d in draws)]
    answers = cached(work / "sel_answers.jsonl", lambda: answer_rows(task, teacher, distinct, st, pool, seed), teacher)
    return sel_rows(task, draws, answers, skill_map, by_id, st, seed, prefix, inputs.num_pairs)


def _synthesise(inputs: SFTDataInputs, task: Task, pairs: list[tuple[str, str]], skill_map: SkillMap, teacher: Teacher,
                pool: ScorePool, work: Path) -> tuple[list[dict], dict[str, float]]:
    st, prefix, seed = inputs.stat, inputs.method, inputs.seed
    proposals = cached(work / "syn_proposals.jsonl",
                       lambda: proposal_rows(task, teacher, pairs, skill_map, st, seed), teacher)
    fresh, dropped = fresh_proposals(task, proposals, blocked_problems(inputs, task))
    solutions = cached(work / "syn_solutions.jsonl", lambda: solution_rows(teacher, fresh, st, seed), teacher)
    rows, stats = syn_rows(task, fresh, solutions, pool, st, seed, prefix, inputs.num_pairs)
    stats[f"{prefix}/proposals"] = float(len(proposals))
    stats.update({f"{prefix}/proposals_dropped/{why}": float(n) for why, n in sorted(dropped.items())})
    return rows, stats
