"""What a `method=` config says: how the SFT dataset is built, and the SFT stage's data and schedule."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from skillexp.generation.config import SamplingConfig
from skillexp.training.config import SFTConfig


@dataclass
class SkillFactoryConfig:
    prompt_variants: list[str] = field(
        default_factory=lambda: ["original", "plan_and_execute", "alternatively", "rephrase"])
    reflections_per_attempt: int = 4  # Countdown: 4 (OpenThoughts: 1)
    reflection_max_tokens: int = 1024
    min_attempts: int = 5  # per question, attempts with a valid reflection (released code: 5)
    sampler: Literal["cfull", "alg1"] = "cfull"  # released code's *C_full (default) or the paper's Algorithm 1
    max_attempts: int = 5  # N = 1..5 in *C_full; L_max in Algorithm 1
    drop_reflection_substrings: list[str] = field(default_factory=lambda: ["idea", "fast"])
    # paper App. C ablations
    ablation: Literal["none", "no_reflections", "no_prompt_diversity", "no_sample_order"] = "none"


@dataclass
class MethodConfig:
    name: Literal["none", "sft", "star", "skillfactory"] = "none"
    num_questions: int | None = None  # questions from the task's train split (null: all of them)
    samples_per_question: int = 16  # star: samples per question; skillfactory: per prompt variant
    # SkillFactory App. B.3: Qwen2.5's generation config, with its repetition penalty, and long answers
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(repetition_penalty=1.1, max_tokens=4096))
    sft: SFTConfig = field(default_factory=SFTConfig)
    skillfactory: SkillFactoryConfig = field(default_factory=SkillFactoryConfig)
