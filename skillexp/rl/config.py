"""What an `rl=` config says: GRPO's batch shape, rewards, advantage and loss variants, and its optimiser.

Knobs are named for what they do; the preset files say which paper or framework each setting comes from. Batch
sizes count prompts, as verl's do: one step samples `prompts_per_step` x `group_size` completions, then makes
`prompts_per_step / mini_batch_prompts` optimizer updates per pass, `epochs_per_batch` passes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from skillexp.eval.config import EvalConfig
from skillexp.generation.config import GenerationConfig, SamplingConfig
from skillexp.models.config import ModelConfig
from skillexp.rl.algorithms import AdvantageScale, Aggregation, KLKind
from skillexp.stage_cache import Artifact, StageInputs
from skillexp.tasks import TaskSpec
from skillexp.tasks.prompts import Prompt
from skillexp.training.config import OptimConfig, TrainerConfig, largest_divisor, next_multiple
from skillexp.utils.schema import AT_LEAST_1, NON_NEGATIVE, POSITIVE, UNKEYED, Range


@dataclass
class RewardTerm:
    """`fn`: "task" (the task's own score), "format" (exactly one <answer> span), or a dotted import path
    "package.module.function" called as f(completion: str, item: Item) -> float in this process."""

    fn: str = "task"
    weight: float = 1.0


@dataclass
class GRPOConfig:
    name: Annotated[str, UNKEYED] = "none"  # the preset; "none" skips the RL stage
    steps: Annotated[int, AT_LEAST_1] = 150  # rollout batches (SkillFactory: 150)
    prompts_per_step: Annotated[int, AT_LEAST_1] = 256
    group_size: Annotated[int, Range(2)] = 16  # completions per prompt (>= 2: a group is its own baseline)
    mini_batch_prompts: Annotated[int, AT_LEAST_1] = 32  # prompts per optimizer update
    # passes over each rollout batch (verl ppo_epochs, TRL num_iterations)
    epochs_per_batch: Annotated[int, AT_LEAST_1] = 1
    # how rollout prompts pose the question (tasks/prompts.py): `instruction` is SkillFactory's Instruction Prompt
    prompt: Prompt = "original"
    # rollouts: verl's defaults (temperature 1, no top-k/top-p), long answers
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(
        temperature=1.0, top_p=1.0, top_k=-1, max_tokens=4096))
    # reward = sum of weight x term (a list, so an override replaces it whole)
    rewards: list[RewardTerm] = field(default_factory=lambda: [RewardTerm("task", 1.0)])
    # advantages: r - group mean, divided by the group's std + eps ("group", GRPO), by the std of all the step's
    # rewards + eps ("batch", TRL's scale_rewards=batch) or by nothing ("none", Dr.GRPO); equal groups get exactly 0
    advantage_scale: AdvantageScale = "group"
    advantage_eps: Annotated[float, POSITIVE] = 1e-6
    drop_zero_std_groups: bool = False  # DAPO dynamic sampling: refill the batch with groups that teach something
    # rollout batches tried per step to refill it; then zero-std groups fill the rest
    max_sampling_rounds: Annotated[int, AT_LEAST_1] = 3
    # loss
    clip_low: Annotated[float, Range(0, 1, open_high=True)] = 0.2
    clip_high: Annotated[float, NON_NEGATIVE] = 0.2  # DAPO clip-higher: 0.28
    # verl's dual clip (its default 3.0): a token with negative advantage loses at most clip_ratio_c x |A|; null = off
    clip_ratio_c: Annotated[float | None, Range(1, open_low=True)] = None
    loss_agg: Aggregation = "token_mean"
    # seq_mean_token_sum_norm (Dr.GRPO) divisor; null: sampling.max_tokens
    loss_norm_constant: Annotated[int | None, AT_LEAST_1] = None
    # > 0 keeps a frozen reference model and adds kl_coef x KL(pi || ref) per token
    kl_coef: Annotated[float, NON_NEGATIVE] = 0.0
    kl_kind: KLKind = "k3"
    # run each group's prompt once per micro-batch, its completions attending to the prompt's KV cache (exact, and
    # about G x fewer prompt tokens); applies when trainer.micro_batch_size is a multiple of group_size
    share_prompt: bool = True
    # log-probs from the last hidden state in blocks, never the [B, T, V] logits (training/head.py): the same values
    # in less memory and time; models outside training/forward.py's PLAIN_HEAD, and ZeRO-3, use the logits whatever
    # this says
    fused_head: bool = True
    mask_truncated: bool = False  # completions cut at max_tokens carry no loss (DAPO overlong filtering)
    # micro-batches whose rows all have advantage 0 (flat groups) contribute exactly 0 to the gradient when there is
    # no KL term: run a one-token forward in their place instead of the full one (DeepSpeed still sees every
    # micro-step, and the optimizer steps on the same gradient, so the weights come out bit for bit the same)
    skip_flat: Annotated[bool, UNKEYED] = True
    # this stage's optimiser (the engine is `trainer`): verl's GRPO defaults, a constant lr of 1e-6 and AdamW betas
    # (0.9, 0.999) (torch's, which verl's actor keeps; SFT's default is (0.9, 0.95))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        lr=1e-6, weight_decay=0.01, betas=[0.9, 0.999], schedule="constant", warmup_ratio=0.0))
    # validation on the eval suite's val split (it samples, so it is part of what the stage computes); 0 = never
    val_every_steps: Annotated[int, NON_NEGATIVE] = 25
    val_num_items: Annotated[int | None, AT_LEAST_1] = 64  # per eval variant
    # validation decodes greedily, one sample per question (verl's val_kwargs: do_sample=False, n=1); false: each
    # variant's own eval protocol (its k samples and sampling block)
    val_greedy: bool = True
    val_before_train: bool = True
    # operation
    sample_table_every_steps: Annotated[int, NON_NEGATIVE, UNKEYED] = 5  # a W&B table of completions
    save_every_steps: Annotated[int, AT_LEAST_1, UNKEYED] = 25

    def shares_prompt(self, trainer: TrainerConfig) -> bool:
        """Does the update run each group's prompt once (`share_prompt`)? Only where a micro-batch holds whole
        groups, and not under full checkpointing: a checkpointed layer cannot write the prompt's KV cache (under
        selective checkpointing the shared forward runs without recomputation, training/recompute.py)."""
        return (self.share_prompt and trainer.micro_batch_size % self.group_size == 0
                and trainer.gradient_checkpointing is not True)

    def batch_problems(self, micro: int, ranks: int) -> list[str]:
        """Everything that keeps a step's prompts from splitting into whole updates of whole groups over `ranks`
        ranks and micro-batches of `micro` sequences, each with values that would fit (empty: it splits)."""
        if self.name == "none":
            return []
        out = []
        if self.prompts_per_step % self.mini_batch_prompts:
            out.append(f"rl.prompts_per_step={self.prompts_per_step} is not a multiple of rl.mini_batch_prompts="
                       f"{self.mini_batch_prompts}: rl.prompts_per_step="
                       f"{next_multiple(self.prompts_per_step, self.mini_batch_prompts)} or rl.mini_batch_prompts="
                       f"{largest_divisor(self.prompts_per_step, self.mini_batch_prompts)} would fit")
        for name, value in (("rl.prompts_per_step", self.prompts_per_step),
                            ("rl.mini_batch_prompts", self.mini_batch_prompts)):
            if value % ranks:
                out.append(f"{name}={value} does not split into whole groups over {ranks} ranks (trainer."
                           f"num_processes x nodes): {name}={next_multiple(value, ranks)} would fit")
        rows = self.mini_batch_prompts * self.group_size // ranks
        if self.mini_batch_prompts % ranks == 0 and rows % micro:
            out.append(f"rl.mini_batch_prompts x rl.group_size / ranks = {self.mini_batch_prompts} x "
                       f"{self.group_size} / {ranks} = {rows} sequences per update and rank is not a multiple of "
                       f"trainer.micro_batch_size={micro}: trainer.micro_batch_size={largest_divisor(rows, micro)} "
                       "would fit")
        return out

    def __post_init__(self) -> None:
        if self.name == "none":
            return
        if not self.rewards:
            raise ValueError("rl.rewards is empty: give at least one term, e.g. [{fn: task, weight: 1.0}].")
        names = [t.fn for t in self.rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"rl.rewards names a term twice: {names}.")
        if not 0 <= self.clip_low < 1 or self.clip_high < 0:
            raise ValueError(f"rl.clip_low must lie in [0, 1) and rl.clip_high be >= 0, got "
                             f"{self.clip_low}, {self.clip_high}.")
        if self.clip_ratio_c is not None and not self.clip_ratio_c > 1:
            raise ValueError(f"rl.clip_ratio_c (dual clip) must be > 1, or null for off; got {self.clip_ratio_c}.")


@dataclass(frozen=True)
class RLInputs(StageInputs):
    """The rl stage: GRPO from `start` on the rl split of `task`, validated (when `rl.val_every_steps` > 0) on
    `validation`: the eval suite's variants that have a val split, as GRPO samples them."""

    STAGE: ClassVar[str] = "rl"
    # 3: exact zero advantages for equal groups; update-wide loss normalisers; 4: groups with a signal lead each update
    VERSION: ClassVar[int] = 4
    KEY_ONLY: ClassVar[tuple[str, ...]] = ("data",)

    start: Artifact
    model: ModelConfig
    task: TaskSpec
    rl: GRPOConfig
    trainer: TrainerConfig
    generation: GenerationConfig
    seed: int
    validation: EvalConfig | None
    # sha256 of every data file the task and the validation suite read, by config path
    data: dict[str, str] = field(default_factory=dict)
    # the training ranks it runs on (trainer.num_processes, its 0 resolved to the GPUs, x the Slurm nodes): each
    # rank samples its share of a step's prompts with its own seed, so the ranks change what it computes
    world: int = 1
