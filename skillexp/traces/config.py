"""The settings that decide whether a question is difficult for a model, from its sampled traces."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from skillexp.utils.schema import AT_LEAST_1, FRACTION

Detector = Literal["ground_truth", "prm", "consistency"]


@dataclass
class PRMConfig:
    """STAT §2.1: a process reward model scores each step of the student's solution (AdaptMI's chat format: one
    user turn per step, the PRM answers "+" or "-"; a step's reward is P(good_token) against bad_token)."""

    model: str = "RLHFlow/Llama3.1-8B-PRM-Mistral-Data"  # HF name or local path
    tau1: Annotated[float, FRACTION] = 0.85  # difficult if the last step's or the mean reward is <= tau1
    tau2: Annotated[float, FRACTION] = 0.7  # ... or if an earlier step's reward is <= tau2
    rule: Literal["paper", "adaptmi"] = "paper"  # tau2 over steps 1..t-1 (paper Eq. 1) or 2..t (AdaptMI's code)
    step_separator: str = "\n\n"
    max_steps: Annotated[int, AT_LEAST_1] = 32  # later steps are merged into the last one
    # tokens per PRM input (older steps are cut from the left beyond this)
    max_length: Annotated[int, AT_LEAST_1] = 4096
    batch_size: Annotated[int, AT_LEAST_1] = 8
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    device: str = "auto"  # "auto": cuda when present
    good_token: str = "+"
    bad_token: str = "-"


@dataclass(frozen=True)
class DifficultyRule:
    """One detector and its thresholds (STAT's stage 1, and the eval's difficult subsets): `ground_truth`, difficult
    when the accuracy of the samples is <= max_accuracy; `consistency`, when fewer than consistency_min_agree
    samples agree on an answer; `prm`, by the PRM's rule on the best-rewarded sample."""

    detector: Detector
    max_accuracy: float = 0.0
    consistency_min_agree: int = 2
    prm: PRMConfig = field(default_factory=PRMConfig)
