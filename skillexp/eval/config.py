"""What an `eval=` config says: the suite (task variants, split, sizes), how it samples, and what it measures;
and the eval stage's inputs record.

A variant may carry a `protocol:` block that overrides the suite's decoding and headline metric for that variant
alone (samples, pass@k values, greedy, number of items, any sampling setting, the metric its table column shows),
so that one eval run fills a paper's whole table: STAT's pass@1 at temperature 0.1 beside AIME's pass@64 at 1.0.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from skillexp.eval.paper import PaperTable, check_paper
from skillexp.generation.config import GenerationConfig, SamplingConfig
from skillexp.models.config import ModelConfig
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.tasks import TaskSpec
from skillexp.tasks.prompts import Prompt
from skillexp.traces.config import Detector, DifficultyRule, PRMConfig
from skillexp.traces.format import BUDGET_TRIGGER
from skillexp.utils.schema import AT_LEAST_1, FRACTION, NON_NEGATIVE, UNKEYED, ConfigError, from_dict

PROTOCOL = "protocol"  # the key of a variant's own protocol block
SUBSET = "subset"  # the key of a variant's difficult-subset block; every other key is a task parameter


@dataclass
class BudgetForcing:
    """SkillFactory §6: continue completions that stop early, re-opened with a trigger, up to a larger budget."""

    enabled: bool = False
    trigger: str = BUDGET_TRIGGER
    # the paper: generate 4,096 tokens, then force up to 8,192 in total
    max_total_tokens: Annotated[int, AT_LEAST_1] = 8192
    rounds: Annotated[int, NON_NEGATIVE] = 1


@dataclass
class ProtocolOverrides:
    """A variant's `protocol:` block: what differs from the suite's settings (unset = the suite's)."""

    k: Annotated[int | None, AT_LEAST_1] = None
    pass_k: list[Annotated[int, AT_LEAST_1]] | None = None
    greedy: bool | None = None
    num_items: Annotated[int | None, AT_LEAST_1] = None
    sampling: dict[str, Any] = field(default_factory=dict)  # e.g. {temperature: 1.0, max_tokens: 4096}
    # the headline metric (the paper's column): mean@<k>, pass@<p> with p in pass_k, or greedy; default mean@<k>
    metric: str | None = None


@dataclass
class DifficultSubset:
    """A variant's `subset:` block: only the questions the BASE student finds difficult, the same ones for every
    row of a table (STAT's MATHD, §2.1: the student's one sample at T 0.1 per question of MATH's 4k test split,
    judged by the PRM rule). Detected as STAT's stage 1 does (traces/difficulty.py) in its own stage."""

    detector: Detector = "prm"
    samples: Annotated[int, AT_LEAST_1] = 1
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(
        temperature=0.1, top_p=1.0, top_k=-1, max_tokens=2048))
    max_accuracy: Annotated[float, FRACTION] = 0.0  # ground_truth: difficult when accuracy <= this
    consistency_min_agree: Annotated[int, AT_LEAST_1] = 2  # consistency: difficult when fewer samples agree
    prm: PRMConfig = field(default_factory=PRMConfig)
    seed: int = 0  # the paper's; one subset per base model, whatever the run's seed

    def rule(self) -> DifficultyRule:
        """The detector with its thresholds, as STAT's stage 1 applies it."""
        return DifficultyRule(self.detector, self.max_accuracy, self.consistency_min_agree, self.prm)


@dataclass(frozen=True)
class Protocol:
    """How one variant is evaluated, resolved from the suite's settings and the variant's overrides."""

    k: int
    pass_k: tuple[int, ...]
    greedy: bool
    num_items: int | None
    sampling: SamplingConfig
    metric: str


@dataclass(frozen=True)
class Variant:
    """One variant of a suite as the config is read: its task, how it is evaluated, and its difficult subset (None
    when it is evaluated on all its questions)."""

    task: TaskSpec
    protocol: Protocol
    subset: DifficultSubset | None


@dataclass
class EvalConfig:
    """A suite: task variants, each evaluated on `num_items` questions of `split` with k samples."""

    name: Annotated[str, UNKEYED]
    variants: dict[str, dict[str, Any]]  # variant name -> {kind: <task>, ...task params}
    split: Literal["val", "test"] = "test"
    num_items: Annotated[int | None, AT_LEAST_1] = 100  # per variant; null = the whole split
    k: Annotated[int, AT_LEAST_1] = 4
    pass_k: list[Annotated[int, AT_LEAST_1]] = field(default_factory=lambda: [1])
    greedy: bool = True
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    # completions per variant shown in the W&B table and the console
    log_samples: Annotated[int, NON_NEGATIVE, UNKEYED] = 8
    # answers tried, reflections and verdict F1 per completion (SkillFactory's skill-use table); runs the task's
    # checker on every attempt in the main process, so it costs about one more scoring pass
    skill_use: bool = True
    budget_forcing: BudgetForcing = field(default_factory=BudgetForcing)
    prompt: Prompt = "original"  # how questions are posed (tasks/prompts.py); as the model was trained
    # the papers' tables this suite fills, by name (report only): suites that include others merge theirs
    paper: Annotated[dict[str, PaperTable], UNKEYED] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [p for p in self.pass_k if not 1 <= p <= self.k]
        if bad:
            raise ValueError(f"eval.pass_k values must lie in [1, eval.k={self.k}], got {bad}.")
        if not self.variants:
            raise ValueError("eval.variants is empty: name at least one task variant.")
        # every variant parsed once, here: its task spec, protocol and subset (a bad one fails when the config is read)
        self._parsed = {name: self._parse(name, spec) for name, spec in self.variants.items()}
        for name, table in self.paper.items():
            check_paper(f"eval.paper.{name}", table, self)

    def variant(self, name: str) -> Variant:
        """Variant `name`, parsed."""
        return self._parsed[name]

    def tasks(self) -> dict[str, TaskSpec]:
        """Each variant's task spec, by variant name."""
        return {name: v.task for name, v in self._parsed.items()}

    def _parse(self, name: str, spec: Any) -> Variant:
        path = f"eval.variants.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{path} must be a mapping {{kind: <task>, ...params}}, got {spec!r}.")
        task = TaskSpec.from_config({k: v for k, v in spec.items() if k not in (PROTOCOL, SUBSET)}, path)
        return Variant(task, self._protocol(path, spec.get(PROTOCOL)), self._subset(path, spec.get(SUBSET)))

    @staticmethod
    def _subset(path: str, raw: Any) -> DifficultSubset | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}.{SUBSET} must be a mapping (detector, samples, sampling, ...), got {raw!r}.")
        return from_dict(DifficultSubset, raw, f"{path}.{SUBSET}")

    def _protocol(self, path: str, raw: Any) -> Protocol:
        """The variant's decoding and headline metric: the suite's settings with its `protocol:` overrides."""
        path = f"{path}.{PROTOCOL}"
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must be a mapping of overrides (k, pass_k, greedy, num_items, sampling, "
                              f"metric), got {raw!r}.")
        o = from_dict(ProtocolOverrides, raw, path)
        k = o.k or self.k
        pass_k = tuple(o.pass_k) if o.pass_k is not None else tuple(p for p in self.pass_k if p <= k) or (1,)
        if bad := [p for p in pass_k if p > k]:
            raise ConfigError(f"{path}.pass_k values must lie in [1, k={k}], got {bad}.")
        sampling = from_dict(SamplingConfig, {**dataclasses.asdict(self.sampling), **o.sampling}, f"{path}.sampling")
        greedy = self.greedy if o.greedy is None else o.greedy
        metric = o.metric or f"mean@{k}"
        allowed = [f"mean@{k}", *(f"pass@{p}" for p in pass_k), *(["greedy"] if greedy else [])]
        if metric not in allowed:
            raise ConfigError(f"{path}.metric={metric!r} is not measured for this variant; choose one of {allowed} "
                              f"(pass@p needs p in pass_k, greedy needs greedy: true).")
        return Protocol(k, pass_k, greedy, o.num_items or self.num_items, sampling, metric)

    def greedy_only(self) -> EvalConfig:
        """This suite decoded greedily, one answer per question (its `mean@1`): verl's validation. Each variant
        keeps its question count and response length; its other protocol settings (k, pass_k, metric, sampling
        temperature) make no sense for one greedy answer and are dropped."""
        def plain(spec: dict[str, Any]) -> dict[str, Any]:
            raw = dict(spec.get(PROTOCOL) or {})
            kept = {k: raw[k] for k in ("num_items",) if k in raw}
            if "max_tokens" in (raw.get("sampling") or {}):
                kept["sampling"] = {"max_tokens": raw["sampling"]["max_tokens"]}
            return {**{k: v for k, v in spec.items() if k != PROTOCOL}, **({PROTOCOL: kept} if kept else {})}

        return dataclasses.replace(self, variants={n: plain(s) for n, s in self.variants.items()}, k=1, pass_k=[1],
                                   greedy=False, sampling=dataclasses.replace(self.sampling, temperature=0.0))


@dataclass(frozen=True)
class EvalInputs(StageInputs):
    """The eval stage: `suite` on the model at `model_dir` (its tokenizer and chat settings from `model`)."""

    STAGE: ClassVar[str] = "eval"
    VERSION: ClassVar[int] = 2
    KEY_ONLY: ClassVar[tuple[str, ...]] = ("data",)

    model_dir: Artifact
    model: ModelConfig
    suite: EvalConfig
    generation: GenerationConfig
    seed: int
    data: dict[str, str] = field(default_factory=dict)  # sha256 of every data file the suite reads, by config path
    # each subset variant's question ids (the subset stage's output)
    subsets: dict[str, Artifact] = field(default_factory=dict)


@dataclass(frozen=True)
class SubsetInputs(StageInputs):
    """The subset stage: which questions of `split` of the variant `task` the base model at `base` finds difficult
    (`subset`); its output lists their ids, read by every eval of the suite."""

    STAGE: ClassVar[str] = "subset"
    VERSION: ClassVar[int] = 1
    KEY_ONLY: ClassVar[tuple[str, ...]] = ("data",)

    base: Artifact
    model: ModelConfig
    task: TaskSpec
    split: str
    subset: DifficultSubset
    generation: GenerationConfig
    seed: int
    data: dict[str, str] = field(default_factory=dict)
    variant: Annotated[str, UNKEYED] = ""  # its name in the suite (messages and logs; the key holds its spec)
