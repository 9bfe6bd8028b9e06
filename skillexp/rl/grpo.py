"""The GRPO stage: a flat loop of sample → score → advantages → clipped policy-gradient updates → weight sync.

One step: `prompts_per_step` prompts from the task's rl split, `group_size` rollouts each on the generation
backend (vLLM, whose weights follow the policy after every step, or HF generate on the training model itself),
rewards in the scoring workers, group-relative advantages, then `epochs_per_batch` passes of mini-batch updates on
the DeepSpeed engine. On N ranks (`trainer.num_processes`, launched through torchrun as SFT is) each rank samples
its share of the step's prompts on its own engine and trains on its own rollouts; the update is the one a single
rank would make on them all (rl/ranks.py). The loss printed is about 0 with one update per batch: the ratio is
exactly 1 and the advantages are centred per group, yet the gradient is not 0. Progress shows in the reward, not in
the loss.
Checkpoints hold the engine, the prompt position and every RNG, so a killed run resumes to the same weights.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import resource
import tempfile
import time
from pathlib import Path

import torch

from skillexp import preemption
from skillexp.eval.stage import run_eval
from skillexp.generation import Generator, build_generator
from skillexp.generation.shared import SharedEngine
from skillexp.models import load_tokenizer
from skillexp.progress import Progress
from skillexp.rl.algorithms import agg_denominator, group_advantages, policy_loss, zero_std_groups
from skillexp.rl.config import GRPOConfig, RLInputs
from skillexp.training.forward import completion_logprobs, policy_head
from skillexp.rl.ranks import all_max, all_mean, all_sum, barrier, gather, share, world
from skillexp.rl.rewards import Reward
from skillexp.rl.rollout import PromptStream, Rollouts, collect, group_tensors, rollout_tensors
from skillexp.runtime import Runtime
from skillexp.tasks.scoring import ScorePool
from skillexp.timing import phase
from skillexp.training.engine import (build_engine, checkpoint_due, export_hf, finish_checkpoints, init_distributed,
                                      load_checkpoint, load_model, save_checkpoint, unrecorded_grad_norm)
from skillexp.training.weights import policy_weights
from skillexp.utils.io import atomic_write_json, rewind_jsonl

log = logging.getLogger(__name__)
STEP_LOG = "steps.jsonl"  # every step's metrics, kept with the stage so a run that reuses it can log them again


def replayed_steps(path: Path) -> dict[int, dict[str, float]]:
    """{step: metrics} from a stage's step log; a step logged twice (a resumed run redid it) keeps its last entry,
    and a line cut short by a kill is skipped."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[int(row.pop("step"))] = row
    return out


def update_geometry(cfg: GRPOConfig, micro: int, ranks: int = 1) -> int:
    """Micro-batches per optimizer update on each of `ranks` ranks (DeepSpeed's gradient accumulation). The run's
    start-up checks the same (config.check_batches); here it guards a stage run from anywhere else."""
    problems = cfg.batch_problems(micro, ranks)
    if problems:
        raise ValueError("; ".join(problems) + ".")
    return cfg.mini_batch_prompts * cfg.group_size // ranks // micro


class GRPO:
    """The stage's state: engine, optional frozen reference, sampler, reward and prompt stream."""

    def __init__(self, inputs: RLInputs, out_dir: Path, rt: Runtime, pool: ScorePool,
                 engine: SharedEngine | None = None):
        from transformers import AutoModelForCausalLM

        self.inputs, self.cfg, self.out_dir, self.rt, self.tracker = inputs, inputs.rl, out_dir, rt, rt.tracker
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg, seed, model_dir = self.cfg, inputs.seed, Path(inputs.start.path)
        self.task = inputs.task.build()
        self.tokenizer = load_tokenizer(model_dir, inputs.model)
        init_distributed()
        self.rank, self.world = world()
        # ranks per rollout engine: vLLM's tensor parallelism spread over consecutive ranks (generation/vllm.py)
        multi_vllm = self.world > 1 and inputs.generation.backend == "vllm"
        self.tp = inputs.generation.tensor_parallel_size if multi_vllm else 1
        if self.world > 1 and inputs.trainer.zero_stage == 3 and inputs.generation.backend == "hf":
            raise ValueError("GRPO with trainer.zero_stage=3 on several ranks samples with generation=vllm: HF "
                             "generate would need every rank in every forward of every other rank.")
        self.gas = update_geometry(cfg, inputs.trainer.micro_batch_size, self.world)
        self.share_prompt = cfg.shares_prompt(inputs.trainer)
        self.updates_per_step = cfg.prompts_per_step // cfg.mini_batch_prompts * cfg.epochs_per_batch
        trainer = dataclasses.replace(inputs.trainer, grad_accum=self.gas, save_every_steps=cfg.save_every_steps)
        torch.manual_seed(seed)
        model = load_model(model_dir, trainer)
        self.trainer = trainer  # the run's engine with GRPO's accumulation and checkpoint cadence
        self.engine = build_engine(model, trainer, cfg.optim, cfg.steps * self.updates_per_step)
        self.shared: SharedEngine | None = None  # an engine the pipeline lends (not closed here)
        self.ref = None  # the frozen reference; with LoRA, the policy with its adapters off (no second copy)
        if cfg.kl_coef > 0 and trainer.lora is None:
            self.ref = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
            self.ref.to(self.engine.device).eval()
            self.ref.requires_grad_(False)
        state = load_checkpoint(self.engine, out_dir / "checkpoints") or {"step": 0, "consumed": 0}
        self.step = state["step"]
        if self.rank == 0:  # the step logs hold the steps that led to the weights, none of a killed attempt's after
            rewind_jsonl(out_dir / STEP_LOG, lambda row: row.get("step", 0) <= self.step)
            self.tracker.rewind(self.step, "rl", "rl_val")
        self.stream = PromptStream(self.task.items("rl"), seed, state["consumed"])
        if inputs.generation.backend == "hf":  # the policy samples itself: nothing to sync
            from skillexp.generation.hf import HFGenerator

            if engine is not None:  # the lent engine's own copy of the model would only hold memory
                engine.close()
            self.gen: Generator = HFGenerator(model_dir, inputs.model, inputs.generation, seed,
                                              model=self.engine.module)
        else:
            self.shared = engine
            self.gen = engine.load(model_dir, inputs.model, inputs.generation, seed) if engine else build_generator(
                model_dir, inputs.model, inputs.generation, seed=seed)
            if self.step:
                self.sync()
        self.reward = Reward(cfg.rewards, self.task, pool)
        self.val_variants = self._val_variants()
        self.tracker.update_config({"rl/world_size": self.world, "rl/rollout_tp": self.gen.tensor_parallel_size})
        if self.step:
            log.info("resuming GRPO at step %d (%d prompts consumed)", self.step, self.stream.consumed)

    def sync(self) -> None:
        """The policy's weights into this rank's sampler (woken first if it slept), streamed a few tensors at a
        time (ZeRO-3 gathers one module's shards at a time; LoRA adapters are merged on the fly)."""
        if self.shared is not None:
            self.shared.modified()
        self.gen.wake(policy_weights(self.engine))

    def _forward_logprobs(self, batch: dict[str, torch.Tensor], model, grad: bool):
        """(log-probs [B, C], entropies [B, C] when training, else None) of the batch's completion tokens."""
        head = policy_head(model) if self.cfg.fused_head else None
        with torch.set_grad_enabled(grad):
            return completion_logprobs(model, batch, self.cfg.sampling.temperature, head, entropy=grad)

    def _mini_batches(self, local_groups: int, epoch: int) -> list[list[int]]:
        """This rank's rows of each of the pass's updates. Every block of `updates` consecutive groups (in the
        step's global order) sends one group to each update, by a random permutation drawn from (seed, step, epoch,
        block) alone: the partition is random, the same whatever the world size, and gives every update
        `mini_batch_prompts / ranks` whole groups from each rank, whose share is a run of whole blocks."""
        updates, g = self.cfg.prompts_per_step // self.cfg.mini_batch_prompts, self.cfg.group_size
        first = self.rank * local_groups  # the global index of this rank's first group
        rng = random.Random(f"grpo-{self.inputs.seed}-{self.step}-{epoch}")
        labels = []
        for _ in range(self.cfg.prompts_per_step // updates):
            block = list(range(updates))
            rng.shuffle(block)
            labels += block
        return [[k * g + j for k in range(local_groups) if labels[first + k] == u for j in range(g)]
                for u in range(updates)]

    def _micro_batches(self, rows: list[int]) -> list[list[int]]:
        micro = self.inputs.trainer.micro_batch_size
        return [rows[i: i + micro] for i in range(0, len(rows), micro)]

    def _batch(self, ro: Rollouts, rows: list[int]) -> dict[str, torch.Tensor]:
        """Tensors for rows that are whole groups in order (shared-prompt forward), or for any rows."""
        g = self.cfg.group_size
        if self.share_prompt:
            batch = group_tensors(ro, [rows[i] // g for i in range(0, len(rows), g)], self.tokenizer.pad_token_id)
        else:
            batch = rollout_tensors(ro, rows, self.tokenizer.pad_token_id)
        if self.cfg.mask_truncated:
            cut = torch.tensor([ro.completions[i].truncated for i in rows])
            batch["completion_mask"][cut] = 0
        return {k: v.to(self.engine.device) for k, v in batch.items()}

    @torch.no_grad()
    def _fixed_logprobs(self, ro: Rollouts, model, rows: list[int] | None = None) -> list[torch.Tensor]:
        """Per-row log-probs under a model that does not change during the updates (old policy or reference), for
        `rows` (default: all; the others are left empty)."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(ro)
        for rows in self._micro_batches(list(range(len(ro))) if rows is None else rows):
            logp, _ = self._forward_logprobs(self._batch(ro, rows), model, grad=False)
            for r, i in enumerate(rows):
                out[i] = logp[r]
        return out

    def train_step(self, ro: Rollouts) -> dict[str, float]:
        """Advantages, then `epochs_per_batch` passes of mini-batch updates over this rank's rollouts.

        Advantages come from the whole step's rewards (every rank's, gathered), so a batch-level std is the
        batch's. An update takes `mini_batch_prompts / ranks` whole groups from each rank; each micro-batch's loss
        is divided by the update's normaliser summed over all its micro-batches and ranks (tokens for token_mean,
        sequences for seq_mean_token_mean, rows x constant for Dr.GRPO), times gas x ranks, because DeepSpeed
        divides every micro-batch loss by gas and averages gradients over ranks: N ranks make exactly the update
        one rank makes on the same rows."""
        cfg = self.cfg
        rewards = torch.tensor(gather(ro.rewards), dtype=torch.float32)  # the step's, in rank order
        adv = group_advantages(rewards, cfg.group_size, cfg.advantage_scale, cfg.advantage_eps)
        adv = adv[share(len(rewards), "rollout rows")]
        # with no KL term a row of advantage 0 adds exactly 0 to the gradient: micro-batches of such rows only run
        # a one-token forward (`_null_loss`), and each update puts the groups with a signal first
        signal = adv != 0
        skip = cfg.skip_flat and cfg.kl_coef == 0
        on_policy = self.updates_per_step == 1  # then old log-probs are the current ones, detached
        # old log-probs of the rows with a signal alone; but a ZeRO-3 forward is collective (it gathers every rank's
        # shards), so on several ranks each scores all its rows: as many forwards as the others
        lockstep = self.world > 1 and self.engine.zero_optimization_stage() == 3
        old = None if on_policy else self._fixed_logprobs(
            ro, self.engine.module, [i for i in range(len(ro)) if signal[i] or not skip or lockstep])
        ref = None
        if self.ref is not None:
            ref = self._fixed_logprobs(ro, self.ref)
        elif cfg.kl_coef > 0:  # LoRA: the base model is the policy without its adapters
            with self.engine.module.disable_adapter():
                ref = self._fixed_logprobs(ro, self.engine.module)
        norm = cfg.loss_norm_constant or cfg.sampling.max_tokens
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        # a skipped micro-batch's statistics that need no forward: what its flat rows give (no entropy, though)
        flat_stats = {"pg_loss": 0.0, "clip_frac_low": 0.0, "clip_frac_high": 0.0,
                      **({"clip_frac_dual": 0.0} if cfg.clip_ratio_c is not None else {}),
                      **({"ratio_mean": 1.0} if on_policy else {})}

        def add(stats: dict[str, float]) -> None:
            for k, v in stats.items():
                sums[k], counts[k] = sums.get(k, 0.0) + float(v), counts.get(k, 0) + 1

        count, skipped, loss_total, grad_norm = 0, 0, 0.0, 0.0
        self.engine.train()
        for epoch in range(cfg.epochs_per_batch):
            for rows in self._mini_batches(len(ro) // cfg.group_size, epoch):
                micro = self._micro_batches(self._signal_first(rows, signal))
                batches = [self._batch(ro, rows) for rows in micro]
                local = sum(agg_denominator(b["completion_mask"], cfg.loss_agg, norm) for b in batches)
                denominator = all_sum([local])[0] / (self.gas * self.world)
                # a micro-batch is skipped only where it is flat on every rank: the ranks' forwards stay in step
                needed = all_sum([float(signal[rows].any() or not skip) for rows in micro])
                for rows, batch, need in zip(micro, batches, needed):
                    if not need:
                        self.engine.backward(self._null_loss())
                        if self.engine.is_gradient_accumulation_boundary():
                            grad_norm = unrecorded_grad_norm(self.engine)
                        self.engine.step()
                        add(flat_stats)
                        skipped += 1
                        continue
                    logp, entropy = self._forward_logprobs(batch, self.engine, grad=True)
                    mask = batch["completion_mask"]
                    width = mask.shape[1]

                    def stack(values: list[torch.Tensor] | None) -> torch.Tensor | None:
                        if values is None:
                            return None
                        out = torch.zeros((len(rows), width), device=logp.device)
                        for r, i in enumerate(rows):
                            out[r, : min(width, values[i].shape[0])] = values[i][:width]
                        return out

                    old_logp = logp.detach() if old is None else stack(old)
                    loss, stats = policy_loss(
                        logp, old_logp, adv[rows].to(logp.device), mask, cfg.clip_low, cfg.clip_high, cfg.loss_agg,
                        norm_constant=norm, denominator=max(denominator, 1e-12), ref_logp=stack(ref),
                        kl_coef=cfg.kl_coef, kl_kind=cfg.kl_kind, clip_ratio_c=cfg.clip_ratio_c)
                    self.engine.backward(loss)
                    if self.engine.is_gradient_accumulation_boundary():
                        grad_norm = unrecorded_grad_norm(self.engine)
                    self.engine.step()
                    entropy = (entropy * mask).sum() / mask.sum().clamp(min=1)
                    add({**stats, "entropy": entropy})
                    count += 1
                    loss_total += loss.item() / self.gas  # this rank's part of the update's loss
        # every rank skips the same micro-batches, so it has the same counts; entropy averages those that ran
        out = all_mean({k: v / counts[k] for k, v in sums.items()})
        out["loss"] = all_sum([loss_total])[0] / self.world / self.updates_per_step
        out["skipped_micro_batch_frac"] = skipped / (skipped + count)
        recorded = self.engine.get_global_grad_norm()
        out["grad_norm"] = float(grad_norm if recorded is None else recorded)  # the last update's, before clipping
        out["lr"] = self.engine.get_lr()[0]
        return out

    def _signal_first(self, rows: list[int], signal: torch.Tensor) -> list[int]:
        """An update's rows (whole groups), the groups with a non-zero advantage first, each kind in its order."""
        g = self.cfg.group_size
        groups = [rows[i: i + g] for i in range(0, len(rows), g)]
        return [r for group in sorted(groups, key=lambda grp: not bool(signal[grp].any())) for r in group]

    def _null_loss(self) -> torch.Tensor:
        """A loss of exactly 0 whose backward gives every trainable parameter a zero gradient, so a skipped
        micro-batch adds what its rows would have added (0) while DeepSpeed's micro-steps, gradient hooks and, on
        several ranks, collectives run as for a real one: 0 x one element of each parameter (no forward at all), or
        under ZeRO-3, whose parameters live in shards gathered by the modules' forwards, 0 x a one-token forward."""
        if self.engine.zero_optimization_stage() == 3:
            ids = torch.full((1, 1), self.tokenizer.pad_token_id or 0, dtype=torch.long, device=self.engine.device)
            return self.engine(input_ids=ids, use_cache=False).logits.float().sum() * 0.0
        return sum(p.view(-1)[0].float() for p in self.engine.module.parameters() if p.requires_grad) * 0.0

    def _val_variants(self) -> dict[str, dict]:
        """The validation suite's variants that have a val split (tiny ones, e.g. 1-digit multiplication, may not)."""
        suite = self.inputs.validation
        if suite is None:
            return {}
        out = {}
        for name, spec in suite.tasks().items():
            if spec.build(name=name).items("val"):
                out[name] = suite.variants[name]
        if not out:
            raise ValueError(f"no eval variant of eval={suite.name} has a val split for RL validation: set "
                             "rl.val_every_steps=0 or give the tasks num_val > 0.")
        return out

    def validate(self) -> None:
        """The validation suite (greedy, one answer per question, with `rl.val_greedy`, as verl does) on rank 0's
        engine: on rank 0, or on every rank of a tensor-parallel engine (all make its generate calls; rank 0 alone
        writes and logs). The other ranks wait for it."""
        assert self.inputs.validation is not None
        if self.rank < self.tp:
            suite = dataclasses.replace(self.inputs.validation, variants=self.val_variants)
            if self.cfg.val_greedy:
                suite = suite.greedy_only()
            with tempfile.TemporaryDirectory() as scratch:
                out = self.out_dir / "val" / f"step_{self.step}" if self.rank == 0 else Path(scratch)
                run_eval(suite, self.inputs.seed, self.gen, out, self.tracker, self.rt.scoring, prefix="rl_val/",
                         step=self.step)
        barrier()

    def diagnostics(self, ro: Rollouts, rounds: int) -> dict[str, float]:
        """The whole step's statistics (every rank's rollouts)."""
        rows = gather([(r, len(c.token_ids), c.truncated) for r, c in zip(ro.rewards, ro.completions)])
        terms = {name: gather(v) for name, v in sorted(ro.terms.items())}
        rewards = torch.tensor([r for r, _, _ in rows])
        lengths = torch.tensor([n for _, n, _ in rows], dtype=torch.float32)
        out = {"reward_mean": rewards.mean().item(), "reward_std": rewards.std().item(),
               "frac_zero_std_groups": zero_std_groups(rewards, self.cfg.group_size).float().mean().item(),
               "completion_len_mean": lengths.mean().item(), "completion_len_max": lengths.max().item(),
               "completion_len_min": lengths.min().item(),
               "truncation_rate": sum(t for _, _, t in rows) / len(rows),
               "sampling_rounds": all_sum([rounds])[0] / self.world, "prompts_consumed": self.stream.consumed,
               "world_size": self.world}
        out.update({f"reward/{name}": sum(v) / len(v) for name, v in terms.items()})
        return out

    def timings(self, ro: Rollouts, t0: float, t1: float, t2: float, t3: float) -> dict[str, float]:
        """Where the step's time went (the slowest rank's, which the others waited for), the throughput of all
        ranks together, and the peak memory of the largest rank so far (its process's RSS; on GPUs also the
        training engine's allocated GPU memory, what the memory plan estimates)."""
        tokens = sum(len(c.token_ids) for c in ro.completions)
        generate_s = ro.seconds.get("generate", t1 - t0)
        times = {"rollout_s": t1 - t0, "generate_s": generate_s, "score_s": ro.seconds.get("score", 0.0),
                 "train_s": t2 - t1, "sync_s": t3 - t2, "step_s": t3 - t0}
        slowest = all_max(times)
        total = all_sum([tokens])[0]
        memory = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux: KiB
        if torch.cuda.is_available():
            memory["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
        memory = all_max(memory)  # the largest rank's
        return {**{f"time/{k}": v for k, v in slowest.items()}, **{f"memory/{k}": v for k, v in memory.items()},
                "rollout_tokens_per_s": total / max(slowest["generate_s"], 1e-9),
                "train_tokens_per_s": total / max(slowest["train_s"], 1e-9)}

    def log_samples(self, ro: Rollouts) -> None:
        rows = [[self.step, ro.items[i].question, ro.completions[i].text, ro.rewards[i]]
                for i in range(0, len(ro), max(1, len(ro) // 8))][:8]
        self.tracker.log_table("rl/samples", ["step", "question", "completion", "reward"], rows)

    def run_loop(self) -> Path:
        cfg = self.cfg
        if cfg.val_before_train and self.step == 0 and cfg.val_every_steps:
            with phase("rl_val"):
                self.validate()
        progress = Progress(log, "GRPO step", cfg.steps, start=self.step, every_s=0)
        with preemption.step_loop():  # a scheduler signal waits for the step and its checkpoint, or the export
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                with phase("rl_rollout"):
                    ro, rounds = collect(self.gen, self.task, self.stream, self.reward, cfg,
                                         seed=self.inputs.seed * 1_000_003 + self.step, tp=self.tp)
                t1 = time.perf_counter()
                with phase("rl_update"):
                    self.gen.sleep()  # a colocated vLLM engine on a GPU gives its memory to the update
                    metrics = self.train_step(ro)
                    t2 = time.perf_counter()
                    if self.inputs.generation.backend != "hf":
                        self.sync()
                t3 = time.perf_counter()
                self.step += 1
                metrics.update(self.diagnostics(ro, rounds))
                metrics.update(self.timings(ro, t0, t1, t2, t3))
                logged = {f"rl/{k}": v for k, v in metrics.items()}
                self.tracker.log(logged, step=self.step)
                if self.rank == 0:
                    with open(self.out_dir / STEP_LOG, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": self.step, **logged}) + "\n")
                if self.rank == 0:
                    progress.step(self.step, reward=metrics["reward_mean"],
                                  zero_std_groups=metrics["frac_zero_std_groups"])
                if cfg.sample_table_every_steps and self.step % cfg.sample_table_every_steps == 0:
                    self.log_samples(ro)
                if cfg.val_every_steps and (self.step % cfg.val_every_steps == 0 or self.step == cfg.steps):
                    with phase("rl_val"):
                        self.validate()
                if checkpoint_due(self.step, cfg.steps, self.trainer):
                    save_checkpoint(self.engine, self.out_dir / "checkpoints", self.step,
                                    {"step": self.step, "consumed": self.stream.consumed},
                                    self.trainer.keep_checkpoints)
                    preemption.exit_if_requested()
            final = self.out_dir / "model"
            export_hf(self.engine, self.tokenizer, final)
            if self.rank == 0:
                atomic_write_json(self.out_dir / "rl_metrics.json", {"steps": self.step, "world_size": self.world,
                                                                     "rollout_tp": self.gen.tensor_parallel_size})
            finish_checkpoints(self.out_dir / "checkpoints", self.trainer)
        return final

    def close(self) -> None:
        if self.shared is None:
            self.gen.close()


def run_grpo(inputs: RLInputs, out_dir: Path, rt: Runtime) -> Path:
    """GRPO in this process (one rank of a launched stage, or the whole stage; rollouts on `rt.engine` when the
    pipeline lent one)."""
    with rt.scoring.pool() as pool:
        stage = GRPO(inputs, out_dir, rt, pool, rt.engine)
        try:
            return stage.run_loop()
        finally:
            stage.close()
