"""Every config composes and validates; wrong overrides fail with a message naming the key and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException

from skillexp.config import load_run_config
from skillexp.utils.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Groups whose options need extra overrides to be complete.
EXTRA = {("model", "hf"): ["model.name=mine", "model.path=some-org/some-model"],  # a hub id: not looked up
         **{("method", m): ["teacher=oracle"] for m in ("stat_sel", "stat_syn")}}  # STAT needs a teacher


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        return cfg


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


GROUP_OPTIONS = [(g, o) for g in ("model", "task", "method", "rl", "trainer", "eval", "generation", "logger")
                 for o in _options(g)]


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_group_option_composes_and_validates(group: str, option: str) -> None:
    run = load_run_config(_compose([f"{group}={option}", *EXTRA.get((group, option), [])]))
    assert run.run_name


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes_and_validates(experiment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")  # stat_math's teacher is the OpenAI API
    run = load_run_config(_compose([f"experiment={experiment}"]))
    assert run.eval.variants


def test_defaults_are_the_main_job() -> None:
    run = load_run_config(_compose([]))
    assert run.model.source == "gguf" and run.generation.backend == "vllm"
    assert run.method.name == "none" and run.rl.name == "none"
    assert run.logger.mode in ("offline", "disabled")


@pytest.mark.parametrize(("override", "expected"), [
    ("generation.backend=tpu", "generation.backend='tpu' is not allowed; choose one of ['hf', 'vllm']"),
    ("+model.temprature=1", "Unknown config key 'model.temprature'"),
    ("eval.k=two", "eval.k must be an integer"),
    ("eval.pass_k=[8]", "eval.pass_k values must lie in [1, eval.k="),
    ("+eval.variants.countdown_3.num_numbrs=4", "num_numbrs"),
    ("eval.variants.countdown_3.kind=chess", "chess"),
])
def test_wrong_values_name_the_key(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose([override]))
    assert expected in str(e.value)


def test_wrong_group_option_lists_the_choices() -> None:
    with pytest.raises(MissingConfigException) as e:
        _compose(["model=gpt5"])
    assert "smollm2_135m" in str(e.value) and "tiny" in str(e.value)
