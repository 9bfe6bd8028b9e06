"""SkillFactory's rationalization ("hint") variants (OpenThoughts, paper App. E.5): the prompt shows the gold answer,
a response that says "hint" is dropped and counted, reflections never see the hint, and the SFT rows are posed
without it. The builder runs on a scripted generator (no model), over task=openthoughts items."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from skillexp.generation.base import Completion
from skillexp.generation.config import SamplingConfig
from skillexp.methods.config import SkillFactoryConfig
from skillexp.methods.skillfactory.build import build_skillfactory
from skillexp.tasks import build_task
from skillexp.tasks.prompts import HINT_VARIANTS, SAMPLING_VARIANTS, VARIANTS
from skillexp.tasks.scoring import ScorePool
from skillexp.utils.schema import ConfigError, from_dict

GOLDS = {"Find the ratio of the two areas.": "\\frac{3}{7}", "Find the smallest prime above forty.": "41"}


@pytest.fixture()
def task(tmp_path: Path):
    rows = [{"conversations": [{"from": "human", "value": q},
                               {"from": "gpt", "value": f"<think>\nwork\n</think>\n\n$\\boxed{{{a}}}$"}],
             "domain": "math"} for q, a in GOLDS.items()]
    path = tmp_path / "ot.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return build_task("openthoughts", {"path": str(path), "num_val": 0, "num_rl": 0})


def test_a_hint_variant_poses_the_question_with_its_answer_and_the_base_variant_without(task) -> None:
    item = task.items("train")[0]
    for base, hinted in zip(VARIANTS, HINT_VARIANTS):
        plain, hint = task.messages(item, base), task.messages(item, hinted)
        assert hint[:-1] == plain[:-1]  # the same system prompt
        assert hint[-1]["content"].startswith(plain[-1]["content"])  # the same question and instruction, then
        assert f"the correct final answer is {item.answer}." in hint[-1]["content"]  # the hint, with the answer
        assert "do not mention this hint" in hint[-1]["content"]
        assert item.answer not in plain[-1]["content"] and "hint" not in plain[-1]["content"].lower()
    for bad in ("instruction_hint", "socratic_hint", "socratic"):
        with pytest.raises(ValueError, match="unknown prompt variant"):
            task.messages(item, bad)


def test_prompt_variants_are_checked_when_the_config_is_read() -> None:
    assert from_dict(SkillFactoryConfig, {"prompt_variants": list(SAMPLING_VARIANTS)}).prompt_variants
    for bad, expected in (("instruction", "choose among"), ("original_hints", "choose among")):
        with pytest.raises(ConfigError, match=expected):
            from_dict(SkillFactoryConfig, {"prompt_variants": ["original", bad]}, "method.skillfactory")
    with pytest.raises(ConfigError, match="twice"):
        from_dict(SkillFactoryConfig, {"prompt_variants": ["original", "original"]}, "method.skillfactory")


class Tokenizer:
    """Text as code points: the scripted generator reads the prompts back."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True) -> str:
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages) + "<assistant>\n"

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [ord(ch) for ch in text]}


class Scripted:
    """Per attempt prompt: sample 0 right, sample 1 wrong; on a hint prompt sample 0 says "Hint" (to be dropped).
    Per reflection prompt: the right verdict. Every prompt is kept for the test to read."""

    def __init__(self) -> None:
        self.tokenizer, self.prompts = Tokenizer(), []

    def generate(self, prompts, params):
        out = []
        for ids in prompts:
            text = "".join(map(chr, ids))
            self.prompts.append(text)
            if "# Proposed solution" in text:  # a reflection
                verdict = "Correct" if "RIGHT" in text else "Incorrect"
                out.append([Completion(f"Rechecked. <verdict>{verdict}</verdict>", [1], "stop")] * params.n)
                continue
            gold = next(a for q, a in GOLDS.items() if q in text)
            right = f"Working it out, RIGHT.\n<answer>{gold}</answer>"
            first = f"The Hint says {gold}, so RIGHT.\n<answer>{gold}</answer>" if "Hint:" in text else right
            texts = [first, "Working it out, WRONG.\n<answer>2</answer>"]
            out.append([Completion(texts[i % 2], [1, 2, 3], "stop") for i in range(params.n)])
        return out


def test_hinted_samples_enter_traces_under_the_unhinted_prompt(task) -> None:
    items = task.items("train")
    sf = SkillFactoryConfig(prompt_variants=list(SAMPLING_VARIANTS), reflections_per_attempt=1)
    cfg = SimpleNamespace(skillfactory=sf, samples_per_question=2, sampling=SamplingConfig())
    gen = Scripted()
    rows, stats = build_skillfactory(task, items, gen, ScorePool(workers=0), cfg, seed=0)

    attempt_prompts = [p for p in gen.prompts if "# Proposed solution" not in p]
    hinted = [p for p in attempt_prompts if "Hint:" in p]
    assert len(attempt_prompts) == 8 * len(items) and len(hinted) == 4 * len(items)
    assert all(any(f"is {a}." in p for a in GOLDS.values()) for p in hinted)  # the hint prompt holds the answer
    reflections = [p for p in gen.prompts if "# Proposed solution" in p]
    assert reflections and not any("Hint:" in p or "hint" in p.lower() for p in reflections)  # never hinted

    # sample 0 of each hint prompt said "Hint": dropped before grading, and counted
    assert stats["skillfactory/attempts_skipped/mentions_hint"] == 4 * len(items)
    assert stats["skillfactory/attempts"] == 16 * len(items)
    assert stats["skillfactory/base_accuracy/original"] == 0.5
    assert stats["skillfactory/base_accuracy/original_hint"] == 0.0  # only the wrong samples were left
    assert not any("Hint" in r["messages"][-1]["content"] for r in rows)

    assert rows and {v for r in rows for v in r["variants"]} & set(HINT_VARIANTS)  # hinted attempts are used
    by_id = {it.id: it for it in items}
    for row in rows:
        item = by_id[row["question_id"]]
        assert row["messages"][:-1] == task.messages(item)  # the un-hinted `original` prompt
        user = row["messages"][-2]["content"]
        assert item.answer not in user and "hint" not in user.lower()


def test_no_hint_variant_no_hint_count() -> None:
    """Configs without hint variants build as before: no hint statistic, nothing dropped for saying "hint"."""
    task = build_task("multiplication", {"digits": 1, "num_train": 2, "num_rl": 0, "num_val": 0, "num_test": 0})
    items = task.items("train")

    class Says(Scripted):
        def generate(self, prompts, params):
            out = []
            for ids in prompts:
                text = "".join(map(chr, ids))
                if "# Proposed solution" in text:
                    out.append([Completion("<verdict>Correct</verdict>", [1], "stop")] * params.n)
                    continue
                item = next(it for it in items if it.question in text)
                out.append([Completion(f"A hint of doubt.\n<answer>{item.answer}</answer>", [1], "stop")] * params.n)
            return out

    cfg = SimpleNamespace(skillfactory=SkillFactoryConfig(min_attempts=1), samples_per_question=1,
                          sampling=SamplingConfig())
    rows, stats = build_skillfactory(task, items, Says(), ScorePool(workers=0), cfg, seed=0)
    assert "skillfactory/attempts_skipped/mentions_hint" not in stats
    assert stats["skillfactory/base_accuracy/original"] == 1.0 and rows


def test_the_openthoughts_recipe_composes() -> None:
    from skillexp.config import compose_run

    run = compose_run(["task=openthoughts", "method=skillfactory_openthoughts"])
    m, sf = run.method, run.method.skillfactory
    assert (run.task.kind, m.name, m.num_questions, m.samples_per_question) == ("openthoughts", "skillfactory", 1000, 2)
    assert sf.prompt_variants == list(SAMPLING_VARIANTS) and sf.reflections_per_attempt == 1
    assert (sf.min_attempts, sf.sampler, sf.max_attempts) == (5, "cfull", 5)  # the Countdown recipe's
