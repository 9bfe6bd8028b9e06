"""STAT's steps on hand-made inputs: the PRM rule and scorer, the three difficulty detectors, answer agreement, the
skill map, STAT-Sel's draws and rows, STAT-Syn's filters, the profile and its chart, the catalogues."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.methods.config import StatConfig
from skillexp.traces.config import DifficultyRule, PRMConfig
from skillexp.methods.stat.difficulty import difficulty_stats, pick_difficult
from skillexp.traces.difficulty import assess, largest_agreement
from skillexp.methods.stat.profile import plot_profile, profile
from skillexp.traces.prm import PRMScorer, prm_difficult, solution_steps
from skillexp.methods.stat.select import answer_rows, draw, missing_pairs, sel_rows
from skillexp.methods.stat.skills import SkillMap, catalogue_source, subsample
from skillexp.methods.stat.synth import agreeing, fresh_proposals
from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.tasks.scoring import ScorePool
from skillexp.teachers.base import SkillCatalogue
from skillexp.teachers.oracle import oracle_teacher
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose

COUNTDOWN = build_task("countdown", {"num_numbers": 3, "num_train": 40, "num_rl": 0, "num_val": 8, "num_test": 8})
MATH = build_task("math", {})


@pytest.mark.parametrize(("rewards", "paper", "adaptmi"), [
    ([0.95, 0.95, 0.95], False, False),
    ([0.95, 0.95, 0.85], True, True),  # last step <= tau1 (ties count)
    ([0.95, 0.95, 0.86], False, False),
    ([0.9, 0.72, 0.9], True, True),  # mean 0.84 <= tau1
    ([0.65, 0.95, 0.95, 0.95], True, False),  # step 1 <= tau2: the paper tests it, the authors' code skips it
    ([0.95, 0.95, 0.95, 0.70, 0.99, 0.99, 0.99], True, True),  # a middle step <= tau2, mean 0.93
    ([0.95, 0.95, 0.95, 0.99], False, False),
    ([0.9], False, False),
    ([], True, True),  # nothing to score: difficult
])
def test_prm_rule(rewards: list[float], paper: bool, adaptmi: bool) -> None:
    assert prm_difficult(rewards, 0.85, 0.7, "paper") is paper
    assert prm_difficult(rewards, 0.85, 0.7, "adaptmi") is adaptmi


def test_solution_steps() -> None:
    text = "First, add.\n\n\n\nThen multiply.\n\n  \n\nDone: <answer>7</answer>"
    assert solution_steps(text, "7", "\n\n", 32) == ["First, add.", "Then multiply.", "Done: <answer>7</answer>",
                                                     "The final answer is: \\boxed{7}."]
    assert solution_steps(text, None, "\n\n", 32)[-1] == "Done: <answer>7</answer>"
    merged = solution_steps("a\n\nb\n\nc\n\nd", "1", "\n\n", 3)  # 2 chunks + the final-answer step
    assert merged == ["a", "b\n\nc\n\nd", "The final answer is: \\boxed{1}."]


def test_prm_scorer_on_the_tiny_model(tiny_model_dir: Path) -> None:
    """A real causal LM read as a PRM: one reward per step, probabilities, independent of batching and padding."""
    questions = ["What is 2 + 3?", "Compute 7 * 6 and then subtract a number that is quite a bit longer."]
    steps = [["2 + 3 = 5", "The final answer is: \\boxed{5}."], ["7 * 6 = 42", "42 - 1 = 41", "so 41", "done"]]
    one = PRMScorer(PRMConfig(model=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=1))
    many = PRMScorer(PRMConfig(model=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=8))
    a, b = one.step_rewards(questions, steps), many.step_rewards(questions, steps)
    assert [len(r) for r in a] == [2, 4]
    assert all(0.0 < r < 1.0 for rs in a for r in rs)
    assert [r for rs in a for r in rs] == pytest.approx([r for rs in b for r in rs], abs=1e-5)
    assert len(set(a[1])) > 1  # each step's reward is read at its own position
    short = PRMScorer(PRMConfig(model=str(tiny_model_dir), dtype="float32", device="cpu", max_length=24))
    assert all(len(p) <= 24 for p in short.prompts(questions[1], steps[1]))
    with pytest.raises(ValueError, match="single tokens"):
        PRMScorer(PRMConfig(model=str(tiny_model_dir), dtype="float32", device="cpu", good_token="+++correct"))


def test_largest_agreement_countdown_and_math() -> None:
    it = Item(id="c", question="", answer="", meta={"numbers": [2, 3, 4], "target": 10})
    answers = [["2 * 3 + 4", "4 + 3 * 2", "(4 - 2) * 3", None, "2 * 2 * 2 * 2"], [None, "junk"], ["9 * 9"]]
    with ScorePool(workers=0) as pool:
        groups = largest_agreement(COUNTDOWN, [it] * 3, answers, pool)
        # value 10 twice beats value 6 once; reusing a number or numbers not given agree with nothing
        assert groups == [[0, 1], [], []]
        m = Item(id="m", question="", answer="")
        groups = largest_agreement(MATH, [m, m], [["\\frac{1}{2}", "0.5", "1/3", "2/4"], ["x", "y"]], pool)
        assert groups == [[0, 1, 3], [0]]


def test_syn_agreement_uses_the_checker_when_the_answer_is_known() -> None:
    known = Item(id="k", question="", answer="2 * 3 + 4", meta={"numbers": [2, 3, 4], "target": 10})
    unknown = Item(id="u", question="", answer="")
    with ScorePool(workers=0) as pool:
        assert agreeing(COUNTDOWN, [known], [["<answer>4 + 2 * 3</answer>", "<answer>9</answer>", None,
                                              "<answer>3 * 4 - 2</answer>"]], pool) == [[0, 3]]
        assert agreeing(MATH, [unknown], [["<answer>1/2</answer>", None, "<answer>0.5</answer>"]], pool) == [[0, 2]]


def test_skill_map_draws_and_sel_rows() -> None:
    train = COUNTDOWN.items("train")
    teacher = oracle_teacher(COUNTDOWN)
    cat = SkillCatalogue.load(COUNTDOWN.skill_catalogue)
    labels = teacher.label_skills(train, cat)
    skill_map = SkillMap(train, [{"id": it.id, "skills": s} for it, s in zip(train, labels)])
    assert all("addition" in labels[i] for i, it in enumerate(train) if it in skill_map.questions["addition"])
    with pytest.raises(ValueError, match="train split lacks"):
        SkillMap(train[:3], [{"id": train[5].id, "skills": []}])
    judgements = [{"id": "v1", "skills": ["multiplication", "addition"]}, {"id": "v2", "skills": ["multiplication"]},
                  {"id": "v3", "skills": ["juggling"]}]
    pairs = missing_pairs(judgements)
    assert pairs == [("v1", "multiplication"), ("v1", "addition"), ("v2", "multiplication"), ("v3", "juggling")]
    draws = draw(pairs, skill_map, k=4, seed=0)
    assert Counter(d["skill"] for d in draws) == {"multiplication": 8, "addition": 4}  # k * n(s); juggling has none
    assert draws == draw(pairs, skill_map, k=4, seed=0)
    for d in draws:
        assert d["skill"] in skill_map.labels[d["id"]]
    per_pair = [d["id"] for d in draws if d["difficult_id"] == "v1" and d["skill"] == "multiplication"]
    assert len(set(per_pair)) == 4  # without replacement within a pair
    by_id = {it.id: it for it in train}
    distinct = [by_id[i] for i in dict.fromkeys(d["id"] for d in draws)]
    st = StatConfig(k=4, answers_per_question=2)
    with ScorePool(workers=0) as pool:
        answers = answer_rows(COUNTDOWN, teacher, distinct, st, pool, seed=0)
    assert all(a["source"] == "teacher" and 1 <= len(a["answers"]) <= 2 for a in answers)
    keep, keep_stats = sel_rows(COUNTDOWN, draws, answers, skill_map, by_id, st, 0, "stat_sel", 1000)
    st_remove = StatConfig(k=4, answers_per_question=2, duplicates="remove")
    remove, stats = sel_rows(COUNTDOWN, draws, answers, skill_map, by_id, st_remove, 0, "stat_sel", 1000)
    n_answers = {a["id"]: len(a["answers"]) for a in answers}
    assert len(keep) == sum(n_answers[d["id"]] for d in draws)
    assert len(remove) == sum(n_answers.values()) < len(keep)
    assert all(COUNTDOWN.score(by_id[r["question_id"]], r["messages"][-1]["content"]) == 1.0 for r in keep)
    assert stats["stat_sel/rows"] == len(remove) and stats["stat_sel/unique_questions"] == len(n_answers)
    baseline = skill_map.stats("m")["m/skill_map/share/multiplication"]
    assert keep_stats["stat_sel/rows/share/multiplication"] > baseline  # the profiled skill is stressed
    small, _ = sel_rows(COUNTDOWN, draws, answers, skill_map, by_id, StatConfig(), 0, "stat_sel", 5)
    assert len(small) == 5 and all(r in keep for r in small)


def test_fresh_proposals_drop_eval_questions_and_repeats() -> None:
    test_item = COUNTDOWN.items("test")[0]
    nums, target = test_item.meta["numbers"], test_item.meta["target"]
    def row(numbers: list[int], t: int) -> dict:
        return {"item": {"id": "p", "question": COUNTDOWN.question(numbers, t), "answer": "",
                         "meta": {"numbers": numbers, "target": t}}}
    proposals = [row(nums[::-1], target), row([1, 2, 3], 9), row([3, 2, 1], 9), row([1, 2, 3], 7)]
    kept, dropped = fresh_proposals(COUNTDOWN, proposals, {COUNTDOWN.problem_key(it) for it in COUNTDOWN.items("test")})
    assert kept == [proposals[1], proposals[3]] and dropped == {"eval_overlap": 1, "duplicate": 1}
    assert MATH.problem_key(Item("a", "What  is\n2+2?", "")) == MATH.problem_key(Item("b", "what is 2+2?", ""))


def test_profile_chart_and_difficulty_pick(tmp_path: Path) -> None:
    judgements = [{"skills": ["division", "addition"]}, {"skills": ["division"]}, {"skills": []},
                  {"skills": ["addition", "division"]}, {"skills": ["subtraction"]}]
    freq = profile(judgements)
    assert freq == [("division", 3), ("addition", 2), ("subtraction", 1)]
    plot_profile(freq, 5, tmp_path / "p.png", "profile")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [{"id": str(i), "difficult": i % 3 != 0, "accuracy": 0.0 if i % 2 else 1.0} for i in range(30)]
    picked = pick_difficult(rows, 7, seed=0)
    assert len(picked) == 7 and all(r["difficult"] for r in picked) and picked == pick_difficult(rows, 7, seed=0)
    assert [int(r["id"]) for r in picked] == sorted(int(r["id"]) for r in picked)  # split order
    assert pick_difficult(rows, 100, seed=0) == [r for r in rows if r["difficult"]]
    stats = difficulty_stats(rows, 7, "s")
    assert stats["s/difficult"] == 20 and stats["s/student_val_accuracy"] == 0.5
    # truth: odd ids (15); flagged: not a multiple of 3 (20); both: 10
    assert stats["s/difficulty_vs_ground_truth/precision"] == 10 / 20
    assert stats["s/difficulty_vs_ground_truth/recall"] == 10 / 15
    assert subsample(rows, 30, 0, "x") == rows


def test_catalogues(tmp_path: Path) -> None:
    math = SkillCatalogue.load(catalogue_source(None, MATH, str(tmp_path)))
    assert sum(map(len, math.subjects.values())) == 112 and len(math.subjects) == 7
    assert {math.subject(it) for it in MATH.items("train")} <= set(math.subjects)  # MATH's subject names resolve
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"subjects": {"default": ["Carrying Digits"]}}))
    assert catalogue_source("mine.json", COUNTDOWN, str(tmp_path)) == own  # relative to where the command ran
    assert SkillCatalogue.load(own).subjects == {"default": ["Carrying Digits"]}
    with pytest.raises(ValueError, match="no skill catalogue ships for task 'multiplication_2'"):
        catalogue_source(None, build_task("multiplication", {}), str(tmp_path))


def test_the_three_difficulty_detectors(tiny_model_dir: Path) -> None:
    it = Item(id="c", question="Make 10.", answer="2 * 3 + 4", meta={"numbers": [2, 3, 4], "target": 10})
    items = [it, it, it]
    samples = [{"completions": ["<answer>2 * 3 + 4</answer>", "<answer>4 * 3</answer>"]},  # right once
               {"completions": ["<answer>4 * 3</answer>", "<answer>3 * 4</answer>"]},  # wrong twice, but agreeing
               {"completions": ["no idea", "<answer>2 + 3</answer>"]}]  # wrong, nothing agrees
    with ScorePool(workers=0) as pool:
        truth = assess(COUNTDOWN, items, samples, DifficultyRule("ground_truth"), pool)
        consistent = assess(COUNTDOWN, items, samples, DifficultyRule("consistency"), pool)
        # thresholds of 0: only a missing answer (its final-step reward is 0) makes a sample difficult
        prm = PRMConfig(model=str(tiny_model_dir), dtype="float32", device="cpu", tau1=0.0, tau2=0.0)
        by_prm = assess(COUNTDOWN, items, samples, DifficultyRule("prm", prm=prm), pool)
        alone = assess(COUNTDOWN, [it], [{"completions": ["no idea"]}], DifficultyRule("prm", prm=prm), pool)
    assert [r["difficult"] for r in truth] == [False, True, True]
    assert [r["accuracy"] for r in truth] == [0.5, 0.0, 0.0]
    assert [r["solution"] for r in truth] == ["<answer>4 * 3</answer>", "<answer>4 * 3</answer>", "no idea"]
    assert [r["difficult"] for r in consistent] == [True, False, True] and consistent[1]["agreeing"] == 2
    assert [r["difficult"] for r in by_prm] == [False, False, False]  # the best sample of each has an answer
    assert by_prm[2]["solution"] == "<answer>2 + 3</answer>" and all(0 < r < 1 for r in by_prm[2]["rewards"])
    assert alone[0]["difficult"] and alone[0]["rewards"][-1] == 0.0


def test_consistency_needs_several_samples() -> None:
    with pytest.raises(ConfigError, match="samples_per_question"):
        load_run_config(_compose(["method=stat_sel", "method.stat.difficulty=consistency"]))
    run = load_run_config(_compose(["method=stat_sel", "teacher=oracle", "method.stat.difficulty=consistency",
                                    "method.samples_per_question=5"]))
    assert run.method.stat.consistency_min_agree == 2


def test_an_llm_countdown_proposal_is_read_back_and_checked() -> None:
    free = Item("p", "Using the numbers in the list [6, 4, 9], create an equation that equals 15. Go!", "",
                {"skill": "addition"})
    read = COUNTDOWN.read_question(free)
    assert read.meta == {"skill": "addition", "numbers": [6, 4, 9], "target": 15}
    vague = Item("q", "Make fifteen from six, four and nine.", "", {})
    assert COUNTDOWN.read_question(vague) == vague and MATH.read_question(free) == free
    assert COUNTDOWN.read_question(Item("r", "[" + "1," * 5000 + "] equals 3", "", {})).meta == {}
    with ScorePool(workers=0) as pool:
        groups = agreeing(COUNTDOWN, [read, vague], [["<answer>6 + 9</answer>", "<answer>4 * 4 - 1</answer>",
                                                      "<answer>9 + 6</answer>"], ["<answer>15</answer>"] * 3], pool)
    assert groups == [[0, 2], []]  # 4 * 4 reuses a number; the unreadable question can agree on nothing
