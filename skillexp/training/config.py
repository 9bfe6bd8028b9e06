"""What a `trainer=` config says: the DeepSpeed engine (ZeRO stage, offload, precision) and the optimisation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from skillexp.utils.schema import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, Range


@dataclass
class LoraConfig:
    r: Annotated[int, AT_LEAST_1] = 16
    alpha: Annotated[int, POSITIVE] = 32
    dropout: Annotated[float, Range(0, 1, open_high=True)] = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class TrainerConfig:
    name: str = "none"  # "none" when no stage trains; preset names otherwise
    # training ranks on this node, launched through torchrun; 0: one per visible GPU
    num_processes: Annotated[int, NON_NEGATIVE] = 1
    zero_stage: Literal[0, 1, 2, 3] = 0
    offload_optimizer: bool = False  # ZeRO 1-3: optimizer states in CPU memory (JIT-builds cpu_adam once)
    offload_param: bool = False  # ZeRO 3 only: parameters in CPU memory
    precision: Literal["fp32", "bf16"] = "fp32"
    lr: Annotated[float, POSITIVE] = 1e-6
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-4
    betas: list[Annotated[float, Range(0, 1, open_high=True)]] = field(default_factory=lambda: [0.9, 0.95])
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: Annotated[float, FRACTION] = 0.05
    min_lr_ratio: Annotated[float, FRACTION] = 0.0  # cosine decays to lr * min_lr_ratio
    grad_clip: Annotated[float, NON_NEGATIVE] = 1.0
    micro_batch_size: Annotated[int, AT_LEAST_1] = 1  # sequences per device per forward
    grad_accum: Annotated[int, AT_LEAST_1] = 1
    gradient_checkpointing: bool = False
    lora: LoraConfig | None = None  # null: full fine-tune (the papers' setting)
    save_every_steps: Annotated[int, AT_LEAST_1] = 50  # resumable checkpoints (and one on a scheduler's signal)
    keep_checkpoints: Annotated[int, AT_LEAST_1] = 1
    # after the stage exported its model: keep the last resumable checkpoint (optimizer state: ~16 bytes a
    # parameter, 2 GB for 135M, >100 GB for 7B), or delete it and skip writing one at the last step (the default)
    keep_final_checkpoint: bool = False
    log_every_steps: Annotated[int, AT_LEAST_1] = 1

    def __post_init__(self) -> None:
        if self.offload_param and self.zero_stage != 3:
            raise ValueError("trainer.offload_param needs trainer.zero_stage=3.")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("trainer.offload_optimizer needs trainer.zero_stage >= 1.")
        if len(self.betas) != 2:
            raise ValueError(f"trainer.betas must be two numbers, got {self.betas}.")


@dataclass
class SFTConfig:
    """The SFT stage's data and schedule; optimisation lives in `trainer`."""

    epochs: Annotated[float, POSITIVE] = 2.0  # SkillFactory: two epochs
    max_steps: Annotated[int | None, AT_LEAST_1] = None  # optimizer steps; overrides epochs when set
    max_length: Annotated[int, AT_LEAST_1] = 4096
    truncation: Literal["right", "drop"] = "right"  # cut long examples, or drop them; both are counted
    packing: bool = False  # pack examples into rows (no cross-attention); trainer.micro_batch_size counts rows
    pack_length: Annotated[int | None, AT_LEAST_1] = None  # tokens per packed row; null: max_length
    val_fraction: Annotated[float, Range(0, 1, open_high=True)] = 0.05
    max_val_examples: Annotated[int, NON_NEGATIVE] = 256
    eval_every_steps: Annotated[int, AT_LEAST_1] = 50
