"""Per-variant protocols: one suite whose variants sample differently and report different headline metrics."""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.eval.config import EvalConfig
from skillexp.eval.stage import run_eval
from skillexp.generation.config import SamplingConfig
from skillexp.tasks.scoring import ScoringConfig
from skillexp.tracking import LoggerConfig, Tracker
from skillexp.utils.io import read_jsonl
from skillexp.utils.schema import ConfigError

MULT = {"kind": "multiplication", "digits": 1, "lenient": True}


def suite(**variants: dict) -> EvalConfig:
    return EvalConfig(name="t", variants=variants, num_items=4, k=4, pass_k=[1, 4], greedy=True,
                      sampling=SamplingConfig(max_tokens=16))


def test_a_protocol_is_the_suites_settings_with_the_variants_overrides() -> None:
    ev = suite(a=MULT, b={**MULT, "protocol": {"k": 64, "pass_k": [64], "greedy": False, "metric": "pass@64",
                                                "sampling": {"temperature": 1.0, "max_tokens": 4096}}})
    a, b = ev.variant("a").protocol, ev.variant("b").protocol
    assert (a.k, a.pass_k, a.greedy, a.metric, a.sampling.temperature) == (4, (1, 4), True, "mean@4", 0.7)
    assert (b.k, b.pass_k, b.greedy, b.metric) == (64, (64,), False, "pass@64")
    assert (b.sampling.temperature, b.sampling.max_tokens, b.sampling.top_p) == (1.0, 4096, 0.8)
    assert ev.tasks()["b"].as_config() == MULT  # the protocol is not a task parameter
    # k below the suite's pass@4: the suite's pass_k values that fit
    assert suite(c={**MULT, "protocol": {"k": 1}}).variant("c").protocol.pass_k == (1,)


@pytest.mark.parametrize("protocol, expected", [
    ({"metric": "pass@2"}, "metric='pass@2' is not measured"),
    ({"metric": "greedy", "greedy": False}, "greedy needs greedy: true"),
    ({"k": 2, "pass_k": [4]}, "pass_k values must lie in [1, k=2]"),
    ({"sampling": {"temprature": 0.1}}, "temprature"),
    ({"sampling": {"temperature": -1}}, "temperature"),
    ({"samples": 4}, "samples"),
    ("fast", "must be a mapping"),
])
def test_a_bad_protocol_names_the_variant_and_the_fix(protocol: object, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        suite(a=MULT, bad={**MULT, "protocol": protocol})
    assert "eval.variants.bad.protocol" in str(e.value) and expected in str(e.value)


class CountingGenerator:
    """The real generator, with its generate() calls recorded."""

    def __init__(self, gen) -> None:
        self.gen, self.tokenizer, self.calls = gen, gen.tokenizer, []

    def generate(self, prompts, params):
        self.calls.append((len(prompts), params.n, params.temperature))
        return self.gen.generate(prompts, params)


def test_one_run_fills_variants_with_their_own_decoding_and_headline_metric(hf_tiny, tmp_path: Path) -> None:
    ev = suite(m1=MULT, m1_again={**MULT, "data_seed": 7},
               m1_hot={**MULT, "protocol": {"k": 2, "pass_k": [2], "greedy": False, "metric": "pass@2",
                                            "num_items": 2, "sampling": {"temperature": 1.0}}})
    counting = CountingGenerator(hf_tiny)
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    summary = run_eval(ev, 0, counting, tmp_path, tracker, ScoringConfig(workers=0))
    # variants that decode alike share a call: m1 and m1_again sampled together, m1_hot alone, then one greedy call
    assert sorted(counting.calls) == sorted([(8, 4, 0.7), (2, 2, 1.0), (8, 1, 0.0)])
    rows = {v: read_jsonl(tmp_path / "generations" / f"{v}.jsonl") for v in ("m1", "m1_again", "m1_hot")}
    assert len(rows["m1"]) == 4 * (4 + 1) and len(rows["m1_hot"]) == 2 * 2
    assert summary["m1/score"] == summary["m1/mean@4"] and summary["m1_hot/score"] == summary["m1_hot/pass@2"]
    assert "m1_hot/greedy" not in summary and "m1_hot/mean@4" not in summary
    assert summary["avg/score"] == pytest.approx(sum(summary[f"{v}/score"] for v in rows) / 3)
    assert not any(k.startswith("avg/mean@") for k in summary)  # k differs across variants: no such average
    assert all(r["sample"] < 2 and not r["greedy"] for r in rows["m1_hot"])
