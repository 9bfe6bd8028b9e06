"""Every numeric setting has a range in its schema, checked at start-up: a wrong value names the key, the value and
the range, before any model, engine or W&B run starts."""
from __future__ import annotations

import dataclasses
import types
import typing

import pytest

from skillexp.config import RunConfig, load_run_config
from skillexp.tasks import TASKS
from skillexp.utils.schema import ConfigError, Range
from tests.test_configs import _compose

# numbers any value of which is meaningful
FREE = {"RunConfig.seed", "RewardTerm.weight", "CountdownConfig.data_seed", "MultiplicationConfig.data_seed",
        "MathConfig.data_seed", "AcronymConfig.data_seed", "LetterCountdownConfig.data_seed",
        "MultipleChoiceConfig.data_seed", "DifficultSubset.seed",
        "PaperCellNote.alternative"}  # a number the paper prints: any value (a budget-forcing delta may be negative)


def _schemas(cls: type, seen: set[type]) -> None:
    if cls in seen:
        return
    seen.add(cls)
    for tp in typing.get_type_hints(cls).values():
        for arg in (tp, *typing.get_args(tp), *(a for t in typing.get_args(tp) for a in typing.get_args(t))):
            if dataclasses.is_dataclass(arg):
                _schemas(arg, seen)


def _numeric(tp: object) -> bool:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is list:
        return _numeric(typing.get_args(tp)[0])
    return tp in (int, float)


def _has_range(tp: object) -> bool:
    if typing.get_origin(tp) is typing.Annotated:
        return any(isinstance(m, Range) for m in typing.get_args(tp)[1:])
    if typing.get_origin(tp) is list:
        return _has_range(typing.get_args(tp)[0])
    return False


def test_every_numeric_setting_has_a_range() -> None:
    seen: set[type] = set()
    for cls in (RunConfig, *(cfg for cfg, _ in TASKS.values())):
        _schemas(cls, seen)
    missing = [f"{cls.__name__}.{name}" for cls in seen
               for name, tp in typing.get_type_hints(cls, include_extras=True).items()
               if _numeric(typing.get_type_hints(cls)[name]) and not _has_range(tp)
               and f"{cls.__name__}.{name}" not in FREE]
    assert not missing, f"numeric settings without a Range in their schema: {sorted(missing)}"


@pytest.mark.parametrize(("overrides", "expected"), [
    (["method=sft", "method.sft.max_steps=-5"], "method.sft.max_steps=-5 is out of range: it must be >= 1."),
    (["method.sft.optim.lr=-1e-3"], "method.sft.optim.lr=-0.001 is out of range: it must be > 0."),
    (["rl=grpo", "rl.optim.lr=-1"], "rl.optim.lr=-1.0 is out of range: it must be > 0."),
    (["eval.sampling.max_tokens=0"], "eval.sampling.max_tokens=0 is out of range: it must be >= 1."),
    (["rl.optim.betas=[0.9,1.5]"], "rl.optim.betas[1]=1.5 is out of range: it must be in [0, 1)."),
    (["rl=grpo", "rl.group_size=1"], "rl.group_size=1 is out of range: it must be >= 2."),
    (["eval.sampling.top_p=0"], "eval.sampling.top_p=0.0 is out of range: it must be in (0, 1]."),
    (["method=stat_sel", "method.stat.max_accuracy=1.5"], "method.stat.max_accuracy=1.5 is out of range"),
    (["generation=vllm", "generation.cpu_block_size=16"], "generation.cpu_block_size=16 is out of range"),
    (["generation=vllm", "generation.cpu_block_size=48"], "generation.cpu_block_size=48 is not a multiple of 32, "
                                                          "which vLLM's CPU attention needs: use 32."),
])
def test_a_value_out_of_range_names_the_key_the_value_and_the_range(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(overrides))
    assert expected in str(e.value)
