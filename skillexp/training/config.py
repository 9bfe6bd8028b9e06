"""What a `trainer=` config says (the DeepSpeed engine: ZeRO stage, offload, precision, checkpoints), and the
blocks each training stage carries: the optimiser (`OptimConfig`) and SFT's data and schedule (`SFTConfig`)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, ClassVar, Literal

from skillexp.models.config import ModelConfig
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.utils.schema import AT_LEAST_1, FRACTION, NON_NEGATIVE, POSITIVE, UNKEYED, Range


ATTENTION_AND_MLP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ALL_LINEAR = "all-linear"  # peft's name for every linear layer but the output head
SELECTIVE = "selective"  # trainer.gradient_checkpointing's op-level mode (training/recompute.py)


@dataclass
class LoraConfig:
    """`trainer.lora`: train LoRA adapters (peft) instead of every weight; the defaults are STAT's SFT recipe
    (r 16, alpha 32, attention and MLP projections). `quantize: nf4` makes it QLoRA: 4-bit NF4 base weights
    through bitsandbytes (CUDA only), usually with `optimizer: paged_adamw_8bit` (`trainer=qlora`)."""

    r: Annotated[int, AT_LEAST_1] = 16
    alpha: Annotated[int, POSITIVE] = 32  # the update is scaled by alpha / r
    dropout: Annotated[float, Range(0, 1, open_high=True)] = 0.05
    # names of the linear layers that get adapters (Llama/Qwen/Mistral style), or [all-linear]
    target_modules: list[str] = field(default_factory=lambda: list(ATTENTION_AND_MLP))
    quantize: Literal[None, "nf4"] = None  # nf4: base weights in 4 bits (double quantization, bf16 compute)
    optimizer: Literal["adamw", "paged_adamw_8bit"] = "adamw"  # paged_adamw_8bit: bitsandbytes' PagedAdamW8bit

    def __post_init__(self) -> None:
        if not self.target_modules:
            raise ValueError("trainer.lora.target_modules is empty: name the linear layers that get adapters "
                             f"(e.g. {list(ATTENTION_AND_MLP)}), or set trainer.lora=null for a full fine-tune.")


@dataclass
class OptimConfig:
    """One training stage's optimiser and schedule: AdamW, linear warmup, then cosine decay or constant. SFT's
    (`method.sft.optim`) defaults to SkillFactory's recipe; RL's (`rl.optim`) to verl's GRPO defaults."""

    lr: Annotated[float, POSITIVE] = 1e-6
    weight_decay: Annotated[float, NON_NEGATIVE] = 1e-4
    betas: list[Annotated[float, Range(0, 1, open_high=True)]] = field(default_factory=lambda: [0.9, 0.95])
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_ratio: Annotated[float, FRACTION] = 0.05
    min_lr_ratio: Annotated[float, FRACTION] = 0.0  # cosine decays to lr * min_lr_ratio
    grad_clip: Annotated[float, NON_NEGATIVE] = 1.0

    def __post_init__(self) -> None:
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas}.")


@dataclass
class TrainerConfig:
    """The engine every training stage runs on: processes, ZeRO, precision, batch geometry, checkpoint cadence.
    What each stage optimises, and how, is its own (`method.sft`, `rl`)."""

    name: Annotated[str, UNKEYED] = "none"  # "none" when no stage trains; preset names otherwise
    # training ranks on this node, launched through torchrun; 0: one per visible GPU
    num_processes: Annotated[int, NON_NEGATIVE] = 1
    zero_stage: Literal[0, 1, 2, 3] = 0
    offload_optimizer: bool = False  # ZeRO 1-3: optimizer states in CPU memory (JIT-builds cpu_adam once)
    offload_param: bool = False  # ZeRO 3 only: parameters in CPU memory
    # auto: bf16 where the device computes it natively, fp16 on CUDA GPUs without bf16, else fp32
    # (skillexp/precision.py; resolved at start-up, before any stage key)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    micro_batch_size: Annotated[int, AT_LEAST_1] = 1  # sequences per device per forward
    grad_accum: Annotated[int, AT_LEAST_1] = 1  # SFT's micro-batches per optimizer step (GRPO derives its own)
    # activations a decoder layer keeps for its backward (training/recompute.py): false, every one autograd saves; true,
    # its input only (the layer runs again in the backward); selective, its matmuls' and attention's outputs (the
    # elementwise ops run again: 43% fewer bytes than false for ~6% more forward + backward time)
    gradient_checkpointing: Literal[False, True, "selective"] = False
    lora: LoraConfig | None = None  # null: full fine-tune (the papers' setting)
    # resumable checkpoints (and one on a scheduler's signal); GRPO's cadence is rl.save_every_steps
    save_every_steps: Annotated[int, AT_LEAST_1, UNKEYED] = 50
    keep_checkpoints: Annotated[int, AT_LEAST_1, UNKEYED] = 1
    # after the stage exported its model: keep the last resumable checkpoint (optimizer state: ~16 bytes a
    # parameter, 2 GB for 135M, >100 GB for 7B), or delete it and skip writing one at the last step (the default)
    keep_final_checkpoint: Annotated[bool, UNKEYED] = False
    log_every_steps: Annotated[int, AT_LEAST_1, UNKEYED] = 1

    def __post_init__(self) -> None:
        if self.offload_param and self.zero_stage != 3:
            raise ValueError("trainer.offload_param needs trainer.zero_stage=3.")
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("trainer.offload_optimizer needs trainer.zero_stage >= 1.")
        if self.gradient_checkpointing == SELECTIVE and self.zero_stage == 3:
            # ZeRO-3 gathers a layer's parameters inside the region the backward runs again, with ops the forward
            # did not run there; selective checkpointing needs the two to run the same ops
            raise ValueError("trainer.gradient_checkpointing=selective does not run under trainer.zero_stage=3: set "
                             "trainer.gradient_checkpointing=true (full) or false.")
        if self.lora is not None:
            self._check_lora(self.lora)

    def _check_lora(self, lora: LoraConfig) -> None:
        """What the engine cannot combine with LoRA, refused at start-up. Whether this machine has CUDA and
        bitsandbytes for QLoRA is checked when the model loads (a run may be configured on a login node)."""
        if lora.quantize and self.zero_stage == 3:
            raise ValueError(f"trainer.lora.quantize={lora.quantize} keeps 4-bit base weights, which ZeRO-3 does not "
                             "partition here: set trainer.zero_stage to 0, 1 or 2 (trainer=qlora uses 0).")
        if self.zero_stage == 3:
            raise ValueError("trainer.lora runs on trainer.zero_stage 0, 1 or 2 (LoRA with ZeRO-3 is not supported): "
                             "lower trainer.zero_stage, or set trainer.lora=null for a full fine-tune.")
        if lora.optimizer == "paged_adamw_8bit" and self.offload_optimizer:
            raise ValueError("trainer.lora.optimizer=paged_adamw_8bit cannot be offloaded (trainer.offload_optimizer "
                             "runs DeepSpeed's CPU Adam instead): set trainer.offload_optimizer=false, or "
                             "trainer.lora.optimizer=adamw.")


@dataclass
class LRSearch:
    """`method.sft.lr_search`: the learning rate chosen on validation, as STAT does (App. C.1: the peak lr per method
    from a grid, "based on accuracy on MATH"). One SFT stage per lr of `grid` (each keyed as a plain run at that lr,
    so a run at one of them reuses it), each model evaluated on the eval suite's val split, and the best one (the
    highest mean headline score over `variants`; the first in `grid` order on a tie) goes on to RL and the eval.
    `skillexp report` names the lr each run chose (training/select.py)."""

    grid: list[Annotated[float, POSITIVE]]
    # the eval variants whose mean headline metric decides, on their val split; null: every variant without a
    # `subset:` block (a difficult subset is of the test split)
    variants: list[str] | None = None
    num_items: Annotated[int | None, AT_LEAST_1] = None  # val questions per variant; null: the whole val split

    def __post_init__(self) -> None:
        if not self.grid:
            raise ValueError("lr_search.grid is empty: list the learning rates to try (e.g. [2.0e-4, 1.0e-4]), or "
                             "set method.sft.lr_search=null to train at method.sft.optim.lr.")
        if len(set(self.grid)) != len(self.grid):
            raise ValueError(f"lr_search.grid lists a learning rate twice: {self.grid}.")
        if self.variants is not None and not self.variants:
            raise ValueError("lr_search.variants is empty: name the eval variants that decide, or null for all.")


@dataclass
class SFTConfig:
    """The SFT stage's data, schedule and optimiser; its engine is `trainer` unless `method.sft.trainer` names one
    for SFT alone (STAT: QLoRA for SFT, full fine-tuning for GRPO)."""

    epochs: Annotated[float, POSITIVE] = 2.0  # SkillFactory: two epochs
    max_steps: Annotated[int | None, AT_LEAST_1] = None  # optimizer steps; overrides epochs when set
    max_length: Annotated[int, AT_LEAST_1] = 4096
    truncation: Literal["right", "drop"] = "right"  # cut long examples, or drop them; both are counted
    packing: bool = False  # pack examples into rows (no cross-attention); trainer.micro_batch_size counts rows
    pack_length: Annotated[int | None, AT_LEAST_1] = None  # tokens per packed row; null: max_length
    val_fraction: Annotated[float, Range(0, 1, open_high=True)] = 0.05
    max_val_examples: Annotated[int, NON_NEGATIVE] = 256
    eval_every_steps: Annotated[int, AT_LEAST_1] = 50
    optim: OptimConfig = field(default_factory=OptimConfig)
    # sequences (rows, with packing) per optimizer step over all ranks, whatever the number of GPUs: the gradient
    # accumulation follows from it (batch_size / (trainer.micro_batch_size x ranks)); null: trainer.grad_accum
    batch_size: Annotated[int | None, AT_LEAST_1] = None
    # the loss from the last hidden state at the target tokens only, never the full-vocabulary logits (training/head.py;
    # the same value, less time and memory); architectures without a plain output head use the logits
    fused_head: bool = True
    # SFT's own engine (a `trainer/` preset: `- /trainer@method.sft.trainer: qlora` in an experiment's defaults);
    # null: the run's `trainer`. The sft stage's record holds the engine it ran on either way.
    trainer: Annotated[TrainerConfig | None, UNKEYED] = None
    # choose method.sft.optim.lr on validation from a grid (LRSearch); null: train once at optim.lr
    lr_search: Annotated[LRSearch | None, UNKEYED] = None

    def engine(self, run_trainer: TrainerConfig) -> TrainerConfig:
        """The engine SFT runs on: its own, else the run's."""
        return self.trainer or run_trainer

    def at_lr(self, lr: float) -> SFTConfig:
        """This SFT at learning rate `lr`, as one candidate of a search trains (no search, no engine of its own:
        the sft stage's record carries the engine)."""
        return replace(self, optim=replace(self.optim, lr=lr), trainer=None, lr_search=None)

    def batch_problems(self, trainer: TrainerConfig, world: int) -> list[str]:
        """Why this SFT batch does not split over `world` ranks of `trainer.micro_batch_size`, with values that
        would fit (empty: it splits)."""
        per_pass = trainer.micro_batch_size * world
        if self.batch_size is None or self.batch_size % per_pass == 0:
            return []
        fits = [f"method.sft.batch_size={next_multiple(self.batch_size, per_pass)}"]
        if self.batch_size % world == 0:
            micro = largest_divisor(self.batch_size // world, trainer.micro_batch_size)
            fits.append(f"trainer.micro_batch_size={micro}")
        return [f"method.sft.batch_size={self.batch_size} is not a multiple of trainer.micro_batch_size x ranks = "
                f"{trainer.micro_batch_size} x {world}: {' or '.join(fits)} would fit"]

    def grad_accum(self, trainer: TrainerConfig, world: int) -> int:
        """Micro-batches per optimizer step on each of `world` ranks."""
        problems = self.batch_problems(trainer, world)
        if problems:
            raise ValueError("; ".join(problems) + ".")
        return trainer.grad_accum if self.batch_size is None else self.batch_size // (trainer.micro_batch_size * world)


def next_multiple(value: int, k: int) -> int:
    """The smallest multiple of `k` that is >= `value` (a batch size that splits into `k` parts)."""
    return -(-value // k) * k


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of `n` that is <= `at_most` (a micro-batch that fills `n` rows exactly)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


@dataclass(frozen=True)
class SFTInputs(StageInputs):
    """The sft stage: fine-tune `base` on the rows of `data` (`data.path` is the JSONL file) with `sft` on the
    engine `trainer`."""

    STAGE: ClassVar[str] = "sft"
    VERSION: ClassVar[int] = 2

    base: Artifact
    data: Artifact
    model: ModelConfig
    sft: SFTConfig
    trainer: TrainerConfig
    seed: int
    # the training ranks it runs on (trainer.num_processes, its 0 resolved to the GPUs, x the Slurm nodes): they
    # split the batches, and without method.sft.batch_size they make the batch (micro x accumulation x ranks)
    world: int = 1
