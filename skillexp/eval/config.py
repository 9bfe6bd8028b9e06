"""What an `eval=` config says: the suite (task variants, split, sizes), how it samples, and what it measures;
and the eval stage's inputs record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from skillexp.generation.config import GenerationConfig, SamplingConfig
from skillexp.methods.skillfactory.trace_format import BUDGET_TRIGGER
from skillexp.models.config import ModelConfig
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.utils.schema import AT_LEAST_1, NON_NEGATIVE, UNKEYED


@dataclass
class BudgetForcing:
    """SkillFactory §6: continue completions that stop early, re-opened with a trigger, up to a larger budget."""

    enabled: bool = False
    trigger: str = BUDGET_TRIGGER
    # the paper: generate 4,096 tokens, then force up to 8,192 in total
    max_total_tokens: Annotated[int, AT_LEAST_1] = 8192
    rounds: Annotated[int, NON_NEGATIVE] = 1


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

    def __post_init__(self) -> None:
        bad = [p for p in self.pass_k if not 1 <= p <= self.k]
        if bad:
            raise ValueError(f"eval.pass_k values must lie in [1, eval.k={self.k}], got {bad}.")
        if not self.variants:
            raise ValueError("eval.variants is empty: name at least one task variant.")


@dataclass(frozen=True)
class EvalInputs(StageInputs):
    """The eval stage: `suite` on the model at `model_dir` (its tokenizer and chat settings from `model`)."""

    STAGE: ClassVar[str] = "eval"
    VERSION: ClassVar[int] = 2

    model_dir: Artifact
    model: ModelConfig
    suite: EvalConfig
    generation: GenerationConfig
    seed: int
