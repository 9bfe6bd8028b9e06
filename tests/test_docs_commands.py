"""Every command the README, docs/ and benchmarks/README.md show, run as a user would: as written, from a fresh
temporary directory, with only overrides that shrink budgets appended (the tiny model, fewer items, steps and
tokens), no `hydra.*` overrides and none of the SKILLEXP_* variables. A command that needs a GPU, a cluster, a hub or
an API key is checked as far as it can go here (its composed config validated; the Slurm job script a fake `sbatch`
receives), and its entry below says so.

A documented command without an entry in CHECKS fails `test_every_documented_command_is_checked`: a command
added to the docs is tested from the day it is added. Every relative link of these pages must reach a file (and a
heading, when it names one): `test_every_relative_link_resolves`.
"""
from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from unittest import mock

import pytest
import yaml
from omegaconf import OmegaConf

from tests.test_slurm import _fake_bin

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "benchmarks" / "README.md"]
BIN = Path(sys.executable).parent

# budgets only: the tiny model and few items / steps / tokens; nothing that changes what a command does
TINY = ["model=tiny"]
SMALL_EVAL = ["eval.num_items=2", "eval.sampling.max_tokens=16"]
STUDY = [*TINY, *SMALL_EVAL, "method=none,sft", "method.num_questions=8", "method.sft.max_steps=2",
         "method.sampling.max_tokens=16", "rl.steps=1", "rl.prompts_per_step=2", "rl.group_size=2",
         "rl.mini_batch_prompts=2", "rl.sampling.max_tokens=16"]
STAT = [*TINY, *SMALL_EVAL, "method.num_questions=16", "method.sampling.max_tokens=16", "method.stat.k=1",
        "method.stat.num_val_questions=8", "method.stat.num_difficult=4", "method.num_pairs=8",
        "method.sft.max_steps=2"]


@dataclass(frozen=True)
class Run:
    """Run the command with `extra` appended; it must exit 0 and leave `expect` (globs under the work dir)."""

    extra: tuple[str, ...] = ()
    expect: tuple[str, ...] = ()
    needs: str | None = None  # a documented command whose outputs this one reads (run first, same directory)
    timeout: int = 900
    then: Callable[[Path, str], None] | None = None  # more checks on the work dir and the console output
    long: bool = False  # minutes even at the smallest budgets: in `make test-long`


@dataclass(frozen=True)
class SameAs:
    """The docs say this command is another one: checked by `make -n`, which prints what `make` would run."""

    target: str
    make_target: str


@dataclass(frozen=True)
class ConfigOnly:
    """Needs a GPU, a hub or an API key: its composed config must compose, resolve and pass start-up validation."""

    why: str
    extra: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # what the user of such a command has (an API key)


@dataclass(frozen=True)
class FakeSlurm:
    """Needs a cluster: run against a fake `sbatch` until the job script is submitted, and check that script."""

    script_has: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class IsCi:
    """The test suite itself: CI's `.ci/run` must call exactly this command."""


@dataclass(frozen=True)
class Collects:
    """A pytest selection too long to run inside the suite: its recipe (`make -n`) must select the `marker` tests
    and collect at least one of them."""

    make_target: str
    marker: str


def quiet_console(output: str) -> None:
    """Libraries log at WARNING or above; the vLLM warnings that repeat for nothing are gone."""
    noisy = [line for line in output.splitlines()
             if re.search(r"\]\[INFO\]", line) and "][skillexp" not in line or re.match(r"\(\w+ pid=\d+\) INFO", line)
             or "Attempted to load weight" in line or "torch.set_num_threads" in line]
    assert not noisy, "library noise on the console:\n" + "\n".join(noisy[:10])


def sft_progress(work: Path, output: str) -> None:
    """The tool's own progress: SFT steps with the time left, one line per eval variant; the run dir's files with
    the keys later stages and reports read (tests/test_main.py's check)."""
    from tests.test_main import check_run_dir

    check_run_dir(next(work.glob("outputs/runs/*/*/summary.json")).parent, ["countdown_3", "multiplication_2"], k=2)
    quiet_console(output)
    assert re.search(r"SFT step 1/4 \(25%\) · loss [\d.]+ · .* · ETA ", output), output[-3000:]
    assert "SFT step 4/4 (100%)" in output and "done in" in output
    assert re.search(r"eval countdown_3 \(1/\d+ variants\): mean@2", output), output[-3000:]


def vllm_quiet(work: Path, output: str) -> None:
    quiet_console(output)
    assert "eval countdown_3 (1/7 variants)" in output


SWEEP = "skillexp -m experiment=smoke method=sft,star seed=0,1"


def prints_the_config(work: Path, output: str) -> None:
    assert "source: tiny" in output and "countdown_3" in output and not (work / "outputs").exists()


def reports(metric: str, where: str) -> Callable[[Path, str], None]:
    """The report command itself wrote (again) its table of `metric` under `where` (the sweep wrote one before)."""
    def check(work: Path, output: str) -> None:
        results = next(work.glob(f"{where}/results.md"))
        assert f"report written to {results.parent.relative_to(work)}" in output or \
            f"report written to {results.parent}" in output, output[-2000:]
        assert f"### {metric}" in results.read_text() and results.stat().st_mtime > time.time() - 120
    return check


def lists_the_stages(work: Path, output: str) -> None:
    """The smoke run's three stages, finished, in the stage cache under the directory it ran in."""
    for stage in ("sft_data", "sft", "eval"):
        assert re.search(rf"^{stage} +\w+ +done ", output, re.M), output
    assert "3 outputs" in output and output.rstrip().endswith("in outputs/stages"), output


def every_stage_in_step(work: Path, output: str) -> None:
    """Each registered stage's line, its code in step with its version."""
    from skillexp import stages

    for name in stages.MODULES:
        assert re.search(rf"^{name} +VERSION \d+ +code \w+ +in step$", output, re.M), output


def built_sft_data(work: Path, output: str) -> None:
    """The method's rows and their statistics, linked from the run directory."""
    stats = json.loads(next(work.glob("outputs/runs/*/*/sft_data/sft_data_stats.json")).read_text())
    assert stats, output[-3000:]


def estimates_the_teacher(work: Path, output: str) -> None:
    """Requests and cost for the paper recipe's 4,000 questions, and nothing sent (no key is set)."""
    assert "| distill (trace) | 4,000 | 4,000 | 0 |" in output and "deepseek-reasoner" in output, output
    assert re.search(r"\| \$[0-9.,]+ \| \$[0-9.,]+ \|$", output, re.M), output


def every_paper_row(work: Path, output: str) -> None:
    """Every row of SkillFactory's Table 6 under the paper's name, ours filled in, the paper's number beside it."""
    table = next(work.glob("outputs/multiruns/skillfactory_countdown_cpu/report/results.md")).read_text()
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| ") and " | " in line}
    for name in ("base model", "STaR", "SkillFactory", "R1 Distill", "BOLT", "RL Only", "STaR → GRPO",
                 "SkillFactory → GRPO", "R1 Distill → GRPO", "BOLT → GRPO"):
        assert name in rows, (name, table[:3000])
        assert re.search(r"\| [0-9.]+(?: ·|\s\|)", rows[name].split(f"| {name} ", 1)[1]), rows[name]
    assert "paper 42.1" in rows["SkillFactory → GRPO"], rows["SkillFactory → GRPO"]


def every_table2_row(work: Path, output: str) -> None:
    """Every row of SkillFactory's Table 2 under the paper's name, ours filled in, the paper's number beside it."""
    table = next(work.glob("outputs/multiruns/skillfactory_openthoughts_cpu/report/results.md")).read_text()
    for name, quote in (("RL Only", "paper 38.0"), ("SkillFactory 1k", "paper 42.1"),
                        ("SkillFactory 10k", "paper 40.6"), ("QwQ distillation", "paper 42.5")):
        row = next((line for line in table.splitlines() if f" | {name} | " in line), None)
        assert row is not None and re.search(rf"\| {name} \| [0-9.]+", row) and quote in row, (name, table[:3000])


def every_stat_row(work: Path, output: str) -> None:
    """Every row of STAT's Table 3 and Fig. 3 under the paper's name, ours filled in, the paper's number beside it;
    every run that asks the teacher metered its requests and their price."""
    sweep = work / "outputs" / "multiruns" / "stat_math_cpu"
    table = (sweep / "report" / "results.md").read_text()
    rows = {line.split(" | ")[1]: line for line in table.splitlines() if line.startswith("| ") and " | " in line}
    names = ["MATH-Train", "MATH-Augment", "MATH-Hard", "Embed-Sel", "Embed-Syn", "STAT-Sel", "STAT-Syn"]
    for name in ("base model", *names, *[f"GRPO on {n}" for n in ("base model", *names)], "STAT-ConSel",
                 "STAT-ConSyn"):
        assert name in rows, (name, table[:3000])
        assert re.search(r"\| [0-9.]+ · paper [0-9.]+", rows[name]), rows[name]
    assert "paper 40.7" in rows["GRPO on STAT-Sel"] and "paper 17.6" in rows["STAT-ConSyn"], table[:3000]
    for summary in sweep.glob("*/*/summary.json"):
        method = OmegaConf.load(summary.parent / "config.yaml").method.name
        if method not in ("none", "sft"):
            data = json.loads((summary.parent / "sft_data" / "sft_data_stats.json").read_text())
            assert f"{method}/teacher/cost_usd" in data, (method, sorted(data))


def the_cpu_study(work: Path, output: str) -> None:
    """The main job's recipe as a multirun from the experiment file: method x seed, every job in the launching
    process (Hydra's basic launcher), one W&B group for the sweep, ending with the report over both seeds."""
    sweep = next((work / "outputs" / "multiruns").iterdir())
    runs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(runs) == 4, runs  # method=none,sft x seed 0,1 (the seeds from the experiment file)
    assert len({json.loads((r / "job.json").read_text())["pid"] for r in runs}) == 1
    assert {OmegaConf.load(r / "config.yaml").logger.group for r in runs} == {f"cpu_study-{sweep.name}"}
    rows = {r["row"]: r for r in csv.DictReader(open(sweep / "report" / "results.csv"))}
    assert {"none → grpo_cpu", "sft → grpo_cpu", "none (pre-RL)", "sft (pre-RL)"} <= set(rows), rows
    assert all(r["n"] == "2" for r in rows.values()), rows
    assert "countdown_2" in (sweep / "report" / "results.md").read_text()
    quiet_console(output)
    assert "GRPO step 1/1 (100%) · reward" in output and "before RL:" in output


def lists_the_hub_datasets(work: Path, output: str) -> None:
    """`--list`: every hub dataset of stat_math named with the file it would become, nothing downloaded."""
    for source in ("DigitalLearningGmbH/MATH-lighteval", "openai/gsm8k", "HuggingFaceH4/aime_2024", "math-ai/aime25",
                   "AI-MO/aimo-validation-amc", "veds12/math-squared"):
        assert f"would download {source} " in output, output[-3000:]
    assert "reads the local file" in output and "math_perturb_hard.jsonl (MISSING" in output, output[-3000:]


def lists_the_recipes_datasets(work: Path, output: str) -> None:
    """The SkillFactory recipe's hub datasets: CommonsenseQA and GSM8K (its other tasks are generated)."""
    assert "would download tau/commonsense_qa " in output and "would download openai/gsm8k " in output, output[-3000:]
    assert output.count("would download") == 2, output[-3000:]


def chose_an_lr(work: Path, output: str) -> None:
    """Both learning rates trained and scored on val, the best went on (tests/training/test_lr_search.py)."""
    from tests.training.test_lr_search import check_selection

    check_selection(next(work.glob("outputs/runs/*/*/sft_select")).parent)
    assert "SFT learning rate chosen on the val split:" in output, output[-3000:]


CHECKS = {
    "make run": Run((f"ARGS={' '.join(STUDY)}",), ("outputs/multiruns/*/report/results.md",), then=the_cpu_study),
    "make test": IsCi(),
    "make test-long": Collects("test-long", "long"),
    ".venv/bin/python -m skillexp experiment=cpu_study": SameAs("make run", "run"),
    ".venv/bin/python -m skillexp": Run(tuple(TINY + SMALL_EVAL), ("outputs/runs/*/*/summary.json",), then=vllm_quiet),
    ".venv/bin/python -m skillexp experiment=smoke": Run((), ("outputs/runs/*/*/summary.json",), then=sft_progress),
    ".venv/bin/python -m skillexp model=tiny generation=hf eval.num_items=4":
        Run(("eval.sampling.max_tokens=16",), ("outputs/runs/*/*/summary.json",)),
    ".venv/bin/python -m skillexp model=qwen2.5_1.5b_instruct eval=countdown":
        ConfigOnly("Qwen2.5-1.5B from the hub on a GPU"),
    ".venv/bin/python -m skillexp --cfg job experiment=smoke": Run(then=prints_the_config),
    "skillexp experiment=smoke": Run((), ("outputs/runs/*/*/summary.json",)),
    "skillexp -m experiment=smoke method=sft,star seed=0,1":
        Run((), ("outputs/multiruns/*/report/results.md",)),
    "skillexp report outputs/multiruns/<date>": Run(needs=SWEEP, then=reports("mean@2", "outputs/multiruns/*/report")),
    "skillexp report <dir> --metric greedy --out <dir2>": Run(needs=SWEEP, then=reports("greedy", "report2")),
    "python -m skillexp experiment=smoke method.sft.lr_search={grid:[1e-3,1e-4],variants:[countdown_3],num_items:3}":
        Run((), ("outputs/runs/*/*/sft_select/selection.json",), then=chose_an_lr),
    "skillexp cache list": Run(needs="skillexp experiment=smoke", then=lists_the_stages),
    "python -m skillexp.stage_code": Run(then=every_stage_in_step),
    "skillexp teacher estimate experiment=skillfactory_countdown method=distill teacher=deepseek_r1":
        Run(then=estimates_the_teacher),
    "experiments/skillfactory_openthoughts.sh": FakeSlurm(("#SBATCH --array=0-11",)),
    "experiments/skillfactory_openthoughts_cpu.sh": Run(then=every_table2_row),
    "experiments/skillfactory_countdown_cpu.sh": Run(("eval.num_items=2",), then=every_paper_row, timeout=1800,
                                                     long=True),
    "python -m skillexp experiment=smoke method=star": Run((), ("outputs/runs/*/*/sft_data/sft_data.jsonl",),
                                                          then=built_sft_data),
    "python -m skillexp experiment=stat_cpu": Run(tuple(STAT), ("outputs/runs/*/*/summary.json",)),
    "python -m skillexp experiment=stat_cpu method=stat_syn": Run(tuple(STAT), ("outputs/runs/*/*/summary.json",)),
    "python -m skillexp task=math eval=math method=stat_sel teacher=openai":
        ConfigOnly("an OpenAI API key and network", env=(("OPENAI_API_KEY", "sk-placeholder"),)),
    "skillexp -m hydra/launcher=local experiment=smoke method=sft,star seed=0,1":
        Run((), ("outputs/multiruns/*/report/results.md",)),
    "skillexp -m hydra/launcher=slurm_gpu hydra.launcher.partition=a100 experiment=skillfactory_countdown "
    "method=none,sft,star,skillfactory seed=0,1,2": FakeSlurm(("#SBATCH --partition=a100", "#SBATCH --array=0-11")),
    "experiments/skillfactory_countdown.sh": FakeSlurm(("#SBATCH --array=0-20",)),
    "experiments/stat_math.sh": FakeSlurm(("#SBATCH --array=0-",)),
    "experiments/stat_math_cpu.sh": Run(("eval.num_items=2",), then=every_stat_row, timeout=1800, long=True),
    # the hub cannot be reached here: the command runs up to the downloads, which --list names instead
    ".venv/bin/python -m skillexp data prepare stat_math --out /shared/skillexp-data":
        Run(("--list",), then=lists_the_hub_datasets),
    ".venv/bin/python -m skillexp data prepare experiment=skillfactory_countdown --out /shared/skillexp-data":
        Run(("--list",), then=lists_the_recipes_datasets),
}


def documented_commands() -> dict[str, str]:
    """Each command in a ```bash block of the docs (continuation lines joined, comments dropped) -> its page."""
    found: dict[str, str] = {}
    for page in DOCS:
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found.setdefault(" ".join(words), str(page.relative_to(ROOT)))
    return found


def test_no_machine_local_config_is_there() -> None:
    """conf/local/ (git-ignored) is composed into every run: a documented command must not work only because of it."""
    local = [p.name for p in (ROOT / "conf" / "local").glob("*.yaml")] if (ROOT / "conf" / "local").is_dir() else []
    assert not local, f"conf/local/ holds {local}: move it aside while testing the documented commands"


def test_every_documented_command_is_checked() -> None:
    documented = documented_commands()
    unchecked = sorted(set(documented) - set(CHECKS))
    assert not unchecked, f"documented commands without an entry in CHECKS (add one): {unchecked}"
    stale = sorted(set(CHECKS) - set(documented))
    assert not stale, f"CHECKS entries no longer in the docs (remove them): {stale}"


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, code and link marks dropped, punctuation other than
    `-` and `_` removed, spaces turned into `-`; a repeated heading gets `-1`, `-2`, ..."""
    anchors: set[str] = set()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # a `# comment` in a code block is no heading
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose, re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", ""))
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def broken_links(page: Path) -> list[str]:
    """Each relative link of a Markdown page (outside code) whose file, or heading anchor, does not exist."""
    text = page.read_text()
    prose = re.sub(r"`[^`]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    targets = re.findall(r"\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)", prose)
    targets += re.findall(r"^\[[^\]]+\]:\s*<?([^\s>]+)", prose, re.M)
    broken = []
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:: not a file of this checkout
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and (file.suffix != ".md" or anchor not in heading_anchors(file.read_text())):
            broken.append(f"{target} (no heading #{anchor} in {file.name})")
    return broken


def test_every_relative_link_resolves() -> None:
    broken = {str(page.relative_to(ROOT)): links for page in DOCS if (links := broken_links(page))}
    assert not broken, f"relative links to no file or no heading: {broken}"


def test_link_check_finds_broken_links(tmp_path: Path) -> None:
    """The link check itself: a missing file and a missing heading are found; code, URLs and good links are not."""
    (tmp_path / "other.md").write_text("# Other page\n\n## The `stage` cache (`paths=`)\n")
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Sweeps\n\n[ok](other.md), [ok](other.md#the-stage-cache-paths), [ok](#sweeps), "
                    "[web](https://example.org/x.md), `[code](gone.md)`,\n[gone](gone.md), [bad](other.md#nowhere), "
                    "[self](#nowhere-here)\n\n```bash\necho [x](gone2.md)\n```\n")
    assert [b.split(" ")[0] for b in broken_links(page)] == ["gone.md", "other.md#nowhere", "#nowhere-here"]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the SKILLEXP_* variables, none of the test session's own
    settings for the hub or W&B, no rendezvous variables an in-process test set."""
    from tests.conftest import subprocess_env

    # MAKE*: CI runs the suite through `make test`; a user's shell has none of make's variables
    drop = ("SKILLEXP_", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "WANDB_", "XDG_CACHE_HOME", "HF_HOME",
            "VLLM_CACHE_ROOT", "PYTEST_", "MAKE", "MFLAGS")
    env = {k: v for k, v in subprocess_env().items() if not k.startswith(drop)}
    return {**env, "WANDB_MODE": "offline", **extra}  # as `make` exports it: W&B runs offline by default


def argv(command: str, work: Path) -> list[str]:
    """The command's words, with the program found as the docs' reader finds it and placeholders filled in."""
    words = shlex.split(command)
    program = words[0]
    if program in ("python", ".venv/bin/python"):
        words[0] = sys.executable
    elif program == "skillexp":
        words[0] = str(BIN / "skillexp")
    elif program == "make":
        words[:1] = ["make", "-s", "-f", str(ROOT / "Makefile")]
    elif program.startswith("experiments/"):
        words[0] = str(ROOT / program)
    sweeps = sorted((work / "outputs" / "multiruns").glob("*"))
    fill = {"<date>": sweeps[-1].name if sweeps else "<date>", "<dir>": str(sweeps[-1]) if sweeps else "<dir>",
            "<dir2>": str(work / "report2")}
    return [re.sub("|".join(map(re.escape, fill)), lambda m: fill[m.group(0)], w) for w in words]


def run(command: str, work: Path, extra: tuple[str, ...] = (), timeout: int = 900, **env: str):
    proc = subprocess.run([*argv(command, work), *extra], cwd=work, env=user_env(**env), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, \
        f"`{command}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Commands already run in this module -> the directory they ran in (for the commands that read their output)."""
    return {}


def _run_check(command: str, check: Run, finished: dict[str, Path], tmp_path: Path) -> Path:
    work = tmp_path
    if check.needs:
        if check.needs not in finished:
            finished[check.needs] = _run_check(check.needs, CHECKS[check.needs], finished, tmp_path / "needs")
        work = finished[check.needs]
    work.mkdir(parents=True, exist_ok=True)
    proc = run(command, work, check.extra, check.timeout)
    for pattern in check.expect:
        assert list(work.glob(pattern)), f"`{command}` left no {pattern} in {work}:\n{proc.stdout[-2000:]}"
    if check.then is not None:
        check.then(work, proc.stdout + proc.stderr)
    finished[command] = work
    return work


def _fake_slurm(command: str, check: FakeSlurm, tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path)
    env = user_env(PATH=f"{fake}:{os.environ['PATH']}")
    proc = subprocess.Popen(argv(command, tmp_path), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 180
    while not list(tmp_path.glob("job.sh.*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher would now wait for the (fake) jobs
    scripts = list(tmp_path.glob("job.sh.*"))
    assert scripts, f"`{command}` submitted no job:\n{proc.communicate()[0][-3000:]}"
    script = scripts[0].read_text()
    for line in ("srun", "-m submitit.core._submit", *check.script_has):
        assert line in script, (line, script)


def _config_only(command: str, check: ConfigOnly, tmp_path: Path) -> None:
    from skillexp.config import load_run_config

    proc = run(command, tmp_path, ("--cfg", "job", "--resolve", *check.extra), **dict(check.env))
    cfg = OmegaConf.create(yaml.safe_load(proc.stdout))
    with mock.patch.dict(os.environ, dict(check.env)):
        load_run_config(cfg)  # start-up validation: every key, value, task, the model's source and the teacher


def make_dry_run(target: str, work: Path) -> subprocess.CompletedProcess:
    """`make -n target` as a user's shell runs it (no directory lines even when the suite itself runs under make)."""
    return subprocess.run(["make", "-n", "--no-print-directory", "-f", str(ROOT / "Makefile"), target], cwd=work,
                          capture_output=True, text=True, env=user_env())


@pytest.mark.slow
@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.long) if getattr(check, "long", False) else c
                                     for c, check in CHECKS.items()])
def test_documented_command(command: str, finished: dict[str, Path], tmp_path: Path) -> None:
    check = CHECKS[command]
    if isinstance(check, Run):
        _run_check(command, check, finished, tmp_path)
    elif isinstance(check, SameAs):
        made = make_dry_run(check.make_target, tmp_path)
        recipe = made.stdout.strip().splitlines()[-1].replace(str(ROOT) + "/", "")
        assert recipe.split() == command.split(), (recipe, command)
    elif isinstance(check, Collects):
        made = make_dry_run(check.make_target, tmp_path)
        recipe = shlex.split(made.stdout.strip().splitlines()[-1].split("&&")[-1])
        assert recipe[1:4] == ["-m", "pytest", "-q"] and recipe[4:6] == ["-m", check.marker], recipe
        collected = subprocess.run([*recipe, "--collect-only"], cwd=ROOT, capture_output=True, text=True,
                                   env=user_env(), timeout=300)
        found = re.search(r"^(\d+)/\d+ tests collected", collected.stdout, re.M)
        assert found and int(found.group(1)) > 0, collected.stdout[-2000:]
    elif isinstance(check, ConfigOnly):
        _config_only(command, check, tmp_path)
    elif isinstance(check, FakeSlurm):
        _fake_slurm(command, check, tmp_path)
    else:
        ci = (ROOT / ".ci" / "run").read_text().split("\n")
        assert command in [line.strip() for line in ci], ".ci/run must call the README's test command"
