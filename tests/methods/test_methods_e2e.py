"""SFT-data methods end to end through the CLI, on a tiny model that has memorised a few Countdown questions
(the `memorizer` fixture in tests/methods/conftest.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.utils.io import read_jsonl
from tests.methods.conftest import TASK
from tests.test_main import run_cli


def _common(model: Path) -> list[str]:
    overrides = [f"+task.{k}={v}" for k, v in TASK.items() if k not in ("kind", "num_numbers")]
    return ["model=hf", f"model.path={model}", "model.name=memorizer", "model.dtype=float32", "generation=hf",
            *overrides, "method.num_questions=8", "method.sampling.max_tokens=40", "method.sft.max_steps=2",
            "method.sft.max_length=1024", "trainer.micro_batch_size=1", "trainer.grad_accum=1", "eval.num_items=2",
            "eval.k=1", "eval.pass_k=[1]", "eval.sampling.max_tokens=16", "scoring.workers=0"]


@pytest.mark.slow
def test_skillfactory_builds_traces_and_trains(memorizer: Path, tmp_path: Path) -> None:
    run_cli([*_common(memorizer), "method=skillfactory", "method.samples_per_question=4",
             "method.skillfactory.reflections_per_attempt=2", "method.skillfactory.reflection_max_tokens=40",
             "method.skillfactory.min_attempts=3"], tmp_path)
    stats = json.loads((tmp_path / "sft_data" / "sft_data_stats.json").read_text())
    assert max(v for k, v in stats.items() if "base_accuracy" in k) > 0, stats
    assert stats["skillfactory/reflections_kept"] > 0 and stats["skillfactory/traces"] > 0, stats
    rows = read_jsonl(tmp_path / "sft_data" / "sft_data.jsonl")
    task = build_task("countdown", {k: v for k, v in TASK.items() if k != "kind"})
    items = {i.id: i for i in task.items("train")}
    for row in rows:
        trace = row["messages"][-1]["content"]
        assert trace.startswith("<think>\n<sample>") and trace.count("<sample>") == row["num_attempts"]
        assert row["correctness"][-1] is True
        assert task.score(items[row["question_id"]], trace) == 1.0  # the stitched trace's final answer is right
    assert (tmp_path / "sft" / "model" / "model.safetensors").exists()
    assert json.loads((tmp_path / "summary.json").read_text())


@pytest.mark.slow
def test_star_keeps_only_correct_samples(memorizer: Path, tmp_path: Path) -> None:
    run_cli([*_common(memorizer), "method=star", "method.samples_per_question=4"], tmp_path)
    rows = read_jsonl(tmp_path / "sft_data" / "sft_data.jsonl")
    task = build_task("countdown", {k: v for k, v in TASK.items() if k != "kind"})
    items = {i.id: i for i in task.items("train")}
    assert rows and all(task.score(items[r["question_id"]], r["messages"][-1]["content"]) == 1.0 for r in rows)


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.long
def test_skillfactory_builder_on_smollm2(smollm2_dir: Path) -> None:
    """The real SmolLM2 through the real builder with vLLM on 1-digit multiplication, graded leniently: it answers
    often enough but never writes answer or verdict tags, so the lenient builder adds them (counted). SmolLM2 is a
    poor judge of its own attempts (verdict accuracy about chance), so few reflections survive and a CPU budget
    stitches few or no traces; every trace that is stitched must be well formed and end on a right answer."""
    from skillexp.generation import build_generator
    from skillexp.generation.config import GenerationConfig, SamplingConfig
    from skillexp.methods.config import MethodConfig, SkillFactoryConfig
    from skillexp.methods.skillfactory.build import build_skillfactory
    from skillexp.tasks.scoring import ScorePool
    from tests.conftest import SMOLLM2

    task = build_task("multiplication", {"digits": 1, "lenient": True, "num_train": 8, "num_rl": 0, "num_val": 0,
                                         "num_test": 0})
    cfg = MethodConfig(name="skillfactory", samples_per_question=2,
                       sampling=SamplingConfig(repetition_penalty=1.1, max_tokens=160),
                       skillfactory=SkillFactoryConfig(reflections_per_attempt=2, reflection_max_tokens=96,
                                                       min_attempts=2))
    gen = build_generator(smollm2_dir, SMOLLM2, GenerationConfig(backend="vllm", show_progress=False))
    try:
        with ScorePool(workers=0) as pool:
            rows, stats = build_skillfactory(task, task.items("train"), gen, pool, cfg, seed=0)
    finally:
        gen.close()
    assert stats["skillfactory/attempts"] == 8 * 4 * 2
    assert stats["skillfactory/base_accuracy/original"] > 0.2, stats  # 1-digit products are within its reach
    assert stats["skillfactory/attempts_answer_tags_added"] > 0, stats
    assert stats["skillfactory/reflections"] > 0 and stats["skillfactory/reflection_verdict_tags_added"] > 0, stats
    items = {i.id: i for i in task.items("train")}
    for row in rows:
        trace = row["messages"][-1]["content"]
        assert trace.count("<sample>") == row["num_attempts"] and row["correctness"][-1] is True
        assert task.score(items[row["question_id"]], trace) == 1.0
