"""`teacher=` options compose and validate; `build_teacher` makes each kind; the LLM teacher's four operations over
a real HTTP endpoint; the local backend on the tiny model, cached so a re-run never loads the model."""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.generation.config import GenerationConfig
from skillexp.tasks import build_task
from skillexp.tasks.base import Item
from skillexp.teachers import SkillCatalogue, Teacher, build_teacher
from skillexp.teachers.chat import LLMTeacher
from skillexp.teachers.config import TeacherConfig
from skillexp.teachers.local import LocalChat
from skillexp.utils.schema import ConfigError
from tests.conftest import TINY
from tests.teachers.stub_server import StubOpenAI
from tests.test_configs import CONF, _compose

OPTIONS = sorted(p.stem for p in (CONF / "teacher").glob("*.yaml"))
CATALOGUE = SkillCatalogue({"default": ["addition", "multiplication", "division", "subtraction", "nesting"]})
TASK = build_task("countdown", {"num_numbers": 3, "num_train": 8, "num_rl": 0, "num_val": 4, "num_test": 4})


def test_every_teacher_option_composes_and_validates() -> None:
    api = {"vllm_server", "deepseek_r1", "scripted"}  # OpenAI-compatible endpoints
    assert set(OPTIONS) == {"none", "openai", "local", "oracle", *api}
    for option in OPTIONS:
        run = load_run_config(_compose([f"teacher={option}"]))
        assert run.teacher.kind == ("openai" if option in api else option)
        if option in ("openai", "deepseek_r1", "scripted"):  # a paid API prices its model (a server you run: no)
            assert run.teacher.price() is not None and run.teacher.price().source, option
    run = load_run_config(_compose(["teacher=local", "model@teacher.local_model=smollm2_135m"]))
    assert run.teacher.local_model is not None and run.teacher.local_model.source == "gguf"
    assert load_run_config(_compose([])).teacher.kind == "none"


@pytest.mark.parametrize(("override", "expected"), [
    ("teacher.model=null", "teacher.model is required"),
    ("teacher.api_key_env=sk-abc123", "must be the NAME of an environment variable"),
    ("teacher.concurrency=0", "teacher.concurrency"),
    ("teacher.kind=anthropic", "teacher.kind='anthropic' is not allowed"),
])
def test_wrong_teacher_values_name_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as e:
        load_run_config(_compose(["teacher=openai", override]))
    assert "sk-abc123" not in str(e.value)  # a key pasted into the wrong place is not echoed


def test_build_teacher_kinds(tmp_path: Path) -> None:
    run = load_run_config(_compose(["teacher=none"]))
    with pytest.raises(ConfigError, match="needs a teacher"):
        build_teacher(run.teacher, run.method.name, TASK, Path(run.paths.cache_dir), run.seed)
    pytest.importorskip("skillexp.teachers.oracle")
    oracle = build_teacher(TeacherConfig(kind="oracle"), run.method.name, TASK, Path(run.paths.cache_dir), run.seed)
    assert isinstance(oracle, Teacher)


def _scripted(body: dict) -> str:
    """A teacher that answers each STAT prompt in its format, with garbage for questions that mention 'junk'."""
    prompt = body["messages"][-1]["content"]
    if "junk" in prompt:
        return "I am a small model and I like turtles."
    if "[MODEL SOLUTION]" in prompt:
        return "<judge>Incorrect</judge><reason>wrong target</reason><skill>Division, astrology</skill>"
    if "[SKILL LIST]" in prompt:
        return "<skill>addition, Multiplications, addition</skill><reason>adds then multiplies</reason>"
    if "[SKILL]" in prompt:
        copy = prompt.split("[QUESTION 1] ")[1].split("\n")[0] if "COPYME" in prompt else "Reach 24 with 3, 8, 1."
        return f"<draft>d</draft><question>{copy}</question>"
    return "Since 1 + 2 = 3 and 3 * 4 = 12, $\\boxed{(1 + 2) * 4}$"


def test_llm_teacher_operations_over_http(tmp_path: Path) -> None:
    run = load_run_config(_compose(["teacher=vllm_server", f"teacher.cache_dir={tmp_path / 'cache'}"]))
    items = TASK.items("train")[:3]
    junk = Item("junk-1", "junk question", "1", {})
    with StubOpenAI(reply=_scripted) as stub:
        run.teacher.base_url = stub.base_url
        teacher = build_teacher(run.teacher, run.method.name, TASK, Path(run.paths.cache_dir), run.seed)
        assert isinstance(teacher, LLMTeacher)
        labels = teacher.label_skills([*items, junk], CATALOGUE, max_skills=5)
        judgements = teacher.judge([items[0], junk], ["some attempt", "another"], CATALOGUE)
        proposals = teacher.propose([items, [Item("c", "COPYME", "", {})] * 3], ["division", "nesting"], n=3)
        solutions = teacher.solve([items[0], junk], n=2, seed=1)
        teacher.close()
    assert labels == [["addition", "multiplication"]] * 3 + [[]]
    assert (judgements[0].correct, judgements[0].skills, judgements[0].reason) == (False, ["division"],
                                                                                    "wrong target")
    assert (judgements[1].correct, judgements[1].skills) == (None, [])
    assert [p.item.question for p in proposals[0]] == ["Reach 24 with 3, 8, 1."] and proposals[1] == []
    assert proposals[0][0].skill == "division" and proposals[0][0].item.meta["examples"] == [i.id for i in items]
    assert solutions[1] == [] and len(solutions[0]) == 2
    assert TASK.extract(solutions[0][0]) == "(1 + 2) * 4"  # \boxed{} restated in the task's <answer> format
    c = teacher.counts
    assert (c["label/parsed"], c["label/unparsable"], c["label/normalised"], c["label/duplicate_dropped"]) == (3, 1, 3, 3)
    assert c["judge/verdict_incorrect"] == 1 and c["judge/no_verdict"] == 1
    assert c["judge/out_of_catalogue_dropped"] == 1
    assert c["propose/duplicate_dropped"] == 2 + 3  # two repeats of one proposal, three copies of an example
    assert c["solve/boxed"] == 2 and c["solve/reformatted"] == 2 and c["solve/no_answer"] == 2
    assert "seed" not in stub.bodies[0] and stub.bodies[-1]["seed"] == 1  # greedy labels share cache entries
    assert teacher.metrics()["teacher/http/requests"] == len(stub.bodies) == 4 + 2 + 2 + 2


def test_local_backend_on_the_tiny_model_with_cache(tmp_path: Path, cache_dir: Path, tiny_model_dir: Path) -> None:
    gen = GenerationConfig(backend="hf", show_progress=False)
    convs = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    huge = [{"role": "user", "content": "word " * 2_000}]  # longer than the tiny model's 1,024-token context
    chat = LocalChat(TINY, gen, cache_dir, tmp_path / "cache")
    out = chat.chat([*convs, huge], n=2, temperature=0.0, max_tokens=8)
    assert [len(o) for o in out] == [2, 2, 2, 0] and all(o[0] == o[1] for o in out[:3])
    assert chat.counts["local/prompt_too_long"] == 1 and chat.counts["chat/completed"] == 3
    sampled = chat.chat(convs[:1], n=3, temperature=1.0, max_tokens=8, seed=5)
    assert len(sampled[0]) == 3
    chat.close()
    again = LocalChat(TINY, gen, cache_dir, tmp_path / "cache")
    assert again.chat(convs, n=2, temperature=0.0, max_tokens=8) == out[:3]
    assert again.chat(convs[:1], n=3, temperature=1.0, max_tokens=8, seed=5) == sampled
    assert again._gen is None and again.counts["chat/cache_hits"] == 4  # answered without loading the model
    teacher = LLMTeacher(again, TASK, TeacherConfig(kind="local", local_model=TINY, max_tokens=8))
    labels = teacher.label_skills(TASK.items("val")[:2], CATALOGUE)
    assert labels == [[], []] and teacher.counts["label/unparsable"] == 2  # the tiny model writes noise
    teacher.close()
