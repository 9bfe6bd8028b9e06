"""Every config composes and validates; wrong overrides fail with a message naming the key and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException

from skillexp.config import load_run_config
from skillexp.methods.config import TEACHER_METHODS
from skillexp.utils.schema import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# Groups whose options need extra overrides to be complete.
EXTRA = {("model", "hf"): ["model.name=mine", "model.path=some-org/some-model"],  # a hub id: not looked up
         **{("method", m): ["teacher=oracle"] for m in TEACHER_METHODS}}  # a teacher


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


def _recipe_sweeps() -> list[tuple[str, str, dict[str, str], str]]:
    """(script, launcher, the sweep's other overrides, method) for every method each experiments/*.sh submits."""
    import re

    out = []
    for script in sorted((CONF.parent / "experiments").glob("*.sh")):
        text = script.read_text().replace("\\\n", " ")
        for command in re.findall(r"-m skillexp -m (.*)", text):
            command = re.split(r"\|\||&&|;", command)[0]  # the skillexp command, not the shell's after it
            args = dict(a.split("=", 1) for a in command.split() if "=" in a and "$" not in a)
            launcher = args.pop("hydra/launcher", "basic")
            for method in args.pop("method", "none").split(","):
                out.append((script.name, launcher, dict(args), method))
    return out


@pytest.mark.parametrize(("script", "launcher", "args", "method"), _recipe_sweeps())
def test_every_recipe_fits_the_ranks_of_the_launcher_it_names(script: str, launcher: str, args: dict[str, str],
                                                              method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch check of each run a recipe submits, on the GPUs its launcher preset asks for per node: what the
    job's start-up would find, found here (SkillFactory's SFT batch of 4 did not split over 8 GPUs)."""
    from omegaconf import OmegaConf

    from skillexp.config import check_batches

    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")  # stat_math's teacher is the OpenAI API
    path = CONF / "hydra" / "launcher" / f"{launcher}.yaml"
    preset = OmegaConf.load(path) if path.exists() else OmegaConf.create({})  # basic: this machine's ranks
    per_node = int(args.pop("hydra.launcher.gpus_per_node", preset.get("gpus_per_node") or 1))
    overrides = [f"{k}={v}" for k, v in args.items() if not k.startswith("hydra.") and "," not in v]
    run = load_run_config(_compose([*overrides, f"method={method}"]))
    check_batches(run, gpus_per_node=per_node, nodes=int(preset.get("nodes") or 1))
    if run.method.name != "none" and run.method.sft.batch_size:  # the ranks the job will have take the batch
        sft = run.method.sft.engine(run.trainer)  # SFT's own engine (STAT: QLoRA on one GPU) or the run's
        ranks = (sft.num_processes or per_node) * int(preset.get("nodes") or 1)
        assert ranks <= per_node and run.method.sft.batch_size % (ranks * sft.micro_batch_size) == 0
