"""The GRPO stage: a flat loop of sample → score → advantages → clipped policy-gradient updates → weight sync.

One step: `prompts_per_step` prompts from the task's rl split, `group_size` rollouts each on the generation
backend (vLLM, whose weights follow the policy after every step, or HF generate on the training model itself),
rewards in the scoring workers, group-relative advantages, then `epochs_per_batch` passes of mini-batch updates on
the DeepSpeed engine. The loss printed is about 0 with one update per batch: the ratio is exactly 1 and the
advantages are centred per group, yet the gradient is not 0. Progress shows in the reward, not in the loss.
Checkpoints hold the engine, the prompt position and every RNG, so a killed run resumes to the same weights.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import torch

from skillexp import preemption
from skillexp.eval.stage import run_eval
from skillexp.generation import Generator, build_generator
from skillexp.generation.shared import SharedEngine
from skillexp.models import load_tokenizer
from skillexp.progress import Progress
from skillexp.rl.algorithms import group_advantages, policy_loss, token_entropy, token_logprobs, zero_std_groups
from skillexp.rl.config import GRPOConfig, RLInputs
from skillexp.rl.rewards import Reward
from skillexp.rl.rollout import PromptStream, Rollouts, collect, group_tensors, rollout_tensors
from skillexp.runtime import Runtime
from skillexp.tasks import build_task, task_spec
from skillexp.tasks.scoring import ScorePool
from skillexp.training.engine import (build_engine, checkpoint_due, export_hf, finish_checkpoints, load_checkpoint,
                                      save_checkpoint)
from skillexp.utils.io import atomic_write_json

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


def completion_logits(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """Logits that predict each completion token, [B, C, V], at the sampling temperature (the distribution the
    rollouts came from; verl does the same)."""
    length = batch["completion_mask"].shape[1]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], logits_to_keep=length + 1, use_cache=False).logits
    logits = logits[:, :-1].float()
    return logits / temperature if temperature > 0 and temperature != 1 else logits


def shared_prompt_logits(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """The same logits as `completion_logits`, computed with each group's prompt run once: a forward over the
    prompts fills a KV cache (with gradients), repeated for the group's completions, which then attend to it. The
    prompt's last position predicts the first completion token. With G completions per prompt this cuts the
    tokens a step processes from G x (prompt + completion) to prompt + G x completion."""
    group = batch["completion_ids"].shape[0] // batch["prompt_ids"].shape[0]
    attention = batch["prompt_attention"]
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["prompt_ids"], attention_mask=attention, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(group)
    first = out.logits.repeat_interleave(group, 0)  # [B, 1, V]: predicts each completion's first token
    comp = batch["completion_ids"]
    lengths = attention.sum(-1).repeat_interleave(group, 0)
    comp_positions = lengths[:, None] + torch.arange(comp.shape[1], device=comp.device)[None]
    full_attention = torch.cat([attention.repeat_interleave(group, 0), torch.ones_like(comp)], 1)
    rest = model(input_ids=comp[:, :-1], attention_mask=full_attention[:, :-1], position_ids=comp_positions[:, :-1],
                 past_key_values=cache, use_cache=True).logits if comp.shape[1] > 1 else first[:, :0]
    logits = torch.cat([first, rest], 1).float()
    return logits / temperature if temperature > 0 and temperature != 1 else logits


def update_geometry(cfg: GRPOConfig, micro: int) -> int:
    """Micro-batches per optimizer update (DeepSpeed's gradient accumulation)."""
    rows = cfg.mini_batch_prompts * cfg.group_size
    if rows % micro:
        raise ValueError(f"rl.mini_batch_prompts x rl.group_size = {rows} sequences per update is not a multiple of "
                         f"trainer.micro_batch_size={micro}.")
    return rows // micro


class GRPO:
    """The stage's state: engine, optional frozen reference, sampler, reward and prompt stream."""

    def __init__(self, inputs: RLInputs, out_dir: Path, rt: Runtime, pool: ScorePool,
                 engine: SharedEngine | None = None):
        from transformers import AutoModelForCausalLM

        self.inputs, self.cfg, self.out_dir, self.rt, self.tracker = inputs, inputs.rl, out_dir, rt, rt.tracker
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg, seed, model_dir = self.cfg, inputs.seed, Path(inputs.start.path)
        kind, params = task_spec(inputs.task, "task")
        self.task = build_task(kind, params)
        self.tokenizer = load_tokenizer(model_dir, inputs.model)
        self.gas = update_geometry(cfg, inputs.trainer.micro_batch_size)
        self.share_prompt = cfg.share_prompt and inputs.trainer.micro_batch_size % cfg.group_size == 0
        self.updates_per_step = cfg.prompts_per_step // cfg.mini_batch_prompts * cfg.epochs_per_batch
        trainer = dataclasses.replace(inputs.trainer, grad_accum=self.gas, save_every_steps=cfg.save_every_steps)
        if trainer.lora is not None:
            raise ValueError("rl=grpo does not support trainer.lora yet (the sampler needs merged weights).")
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.trainer = trainer  # the run's engine with GRPO's accumulation and checkpoint cadence
        self.engine = build_engine(model, trainer, cfg.optim, cfg.steps * self.updates_per_step)
        if torch.distributed.get_world_size() > 1:
            raise ValueError("rl=grpo runs on one process for now: set trainer.num_processes=1.")
        self.shared: SharedEngine | None = None  # an engine the pipeline lends (not closed here)
        self.ref = None
        if cfg.kl_coef > 0:
            self.ref = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
            self.ref.to(self.engine.device).eval()
            self.ref.requires_grad_(False)
        state = load_checkpoint(self.engine, out_dir / "checkpoints") or {"step": 0, "consumed": 0}
        self.step = state["step"]
        self.stream = PromptStream(self.task.items("rl"), seed, state["consumed"])
        if inputs.generation.backend == "hf":  # the policy samples itself: nothing to sync
            from skillexp.generation.hf import HFGenerator

            if engine is not None:  # the lent engine's own copy of the model would only hold memory
                engine.close()
            self.gen: Generator = HFGenerator(model_dir, inputs.model, inputs.generation, seed,
                                              model=self.engine.module)
        else:
            self.shared = engine
            self.gen = engine.load(model_dir) if engine else build_generator(
                model_dir, inputs.model, inputs.generation, seed=seed)
            if self.step:
                self.sync()
        self.reward = Reward(cfg.rewards, self.task, pool)
        self.val_variants = self._val_variants()
        if self.step:
            log.info("resuming GRPO at step %d (%d prompts consumed)", self.step, self.stream.consumed)

    def sync(self) -> None:
        """The policy's weights into the sampler (ZeRO-3 gathers each rank's shards first)."""
        if self.shared is not None:
            self.shared.modified()
        module = self.engine.module
        if self.engine.zero_optimization_stage() == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters())):
                self.gen.load_weights(module.named_parameters())
        else:
            self.gen.load_weights(module.named_parameters())

    def _forward_logprobs(self, batch: dict[str, torch.Tensor], model, grad: bool):
        temperature = self.cfg.sampling.temperature
        with torch.set_grad_enabled(grad):
            if "prompt_ids" in batch:
                logits, targets = shared_prompt_logits(model, batch, temperature), batch["completion_ids"]
            else:
                logits = completion_logits(model, batch, temperature)
                targets = batch["input_ids"][:, -batch["completion_mask"].shape[1]:]
            return token_logprobs(logits, targets), logits

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
    def _fixed_logprobs(self, ro: Rollouts, model) -> list[torch.Tensor]:
        """Per-row log-probs under a model that does not change during the updates (old policy or reference)."""
        out: list[torch.Tensor] = [torch.empty(0)] * len(ro)
        for rows in self._micro_batches(list(range(len(ro)))):
            logp, _ = self._forward_logprobs(self._batch(ro, rows), model, grad=False)
            for r, i in enumerate(rows):
                out[i] = logp[r]
        return out

    def train_step(self, ro: Rollouts) -> dict[str, float]:
        """Advantages, then `epochs_per_batch` passes of mini-batch updates over the step's rollouts."""
        cfg = self.cfg
        rewards = torch.tensor(ro.rewards, dtype=torch.float32)
        adv = group_advantages(rewards, cfg.group_size, cfg.advantage_scale, cfg.advantage_eps)
        on_policy = self.updates_per_step == 1  # then old log-probs are the current ones, detached
        old = None if on_policy else self._fixed_logprobs(ro, self.engine.module)
        ref = self._fixed_logprobs(ro, self.ref) if self.ref is not None else None
        norm = cfg.loss_norm_constant or cfg.sampling.max_tokens
        rng = random.Random(f"grpo-{self.inputs.seed}-{self.step}")
        sums: dict[str, float] = {}
        count, loss_total = 0, 0.0
        self.engine.train()
        for _ in range(cfg.epochs_per_batch):
            groups = list(range(len(ro) // cfg.group_size))  # shuffled whole groups keep micro-batches aligned
            rng.shuffle(groups)
            order = [k * cfg.group_size + j for k in groups for j in range(cfg.group_size)]
            size = cfg.mini_batch_prompts * cfg.group_size
            for m in range(0, len(order), size):
                micro = self._micro_batches(order[m: m + size])
                batches = [self._batch(ro, rows) for rows in micro]
                tokens = sum(float(b["completion_mask"].sum()) for b in batches)
                for rows, batch in zip(micro, batches):
                    logp, logits = self._forward_logprobs(batch, self.engine, grad=True)
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
                    # token_mean over the whole update: each micro-batch divides by the update's token count;
                    # DeepSpeed divides every micro-batch loss by gas, hence the factor back
                    loss, stats = policy_loss(
                        logp, old_logp, adv[rows].to(logp.device), mask, cfg.clip_low, cfg.clip_high, cfg.loss_agg,
                        norm_constant=norm, num_tokens=max(tokens, 1.0) / self.gas, ref_logp=stack(ref),
                        kl_coef=cfg.kl_coef, kl_kind=cfg.kl_kind)
                    self.engine.backward(loss)
                    self.engine.step()
                    with torch.no_grad():
                        entropy = (token_entropy(logits) * mask).sum() / mask.sum().clamp(min=1)
                    for k, v in {**stats, "entropy": entropy}.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    count += 1
                    loss_total += loss.item() / self.gas  # the update's loss is the sum over its micro-batches
        out = {k: v / count for k, v in sums.items()}
        out["loss"] = loss_total / self.updates_per_step
        out["grad_norm"] = float(self.engine.get_global_grad_norm() or 0.0)
        out["lr"] = self.engine.get_lr()[0]
        return out

    def _val_variants(self) -> dict[str, dict]:
        """The validation suite's variants that have a val split (tiny ones, e.g. 1-digit multiplication, may not)."""
        suite = self.inputs.validation
        if suite is None:
            return {}
        out = {}
        for name, spec in suite.task_specs().items():
            kind, params = task_spec(spec, f"eval.variants.{name}")
            if build_task(kind, params, name=name).items("val"):
                out[name] = suite.variants[name]
        if not out:
            raise ValueError(f"no eval variant of eval={suite.name} has a val split for RL validation: set "
                             "rl.val_every_steps=0 or give the tasks num_val > 0.")
        return out

    def validate(self) -> dict[str, float]:
        assert self.inputs.validation is not None
        suite = dataclasses.replace(self.inputs.validation, variants=self.val_variants)
        return run_eval(suite, self.inputs.seed, self.gen, self.out_dir / "val" / f"step_{self.step}", self.tracker,
                        self.rt.scoring, prefix="rl_val/", step=self.step)

    def diagnostics(self, ro: Rollouts, rounds: int) -> dict[str, float]:
        rewards = torch.tensor(ro.rewards)
        lengths = torch.tensor([len(c.token_ids) for c in ro.completions], dtype=torch.float32)
        out = {"reward_mean": rewards.mean().item(), "reward_std": rewards.std().item(),
               "frac_zero_std_groups": zero_std_groups(rewards, self.cfg.group_size).float().mean().item(),
               "completion_len_mean": lengths.mean().item(), "completion_len_max": lengths.max().item(),
               "completion_len_min": lengths.min().item(),
               "truncation_rate": sum(c.truncated for c in ro.completions) / len(ro),
               "sampling_rounds": rounds, "prompts_consumed": self.stream.consumed}
        out.update({f"reward/{name}": sum(v) / len(v) for name, v in ro.terms.items()})
        return out

    def log_samples(self, ro: Rollouts) -> None:
        rows = [[self.step, ro.items[i].question, ro.completions[i].text, ro.rewards[i]]
                for i in range(0, len(ro), max(1, len(ro) // 8))][:8]
        self.tracker.log_table("rl/samples", ["step", "question", "completion", "reward"], rows)

    def run_loop(self) -> Path:
        cfg = self.cfg
        if cfg.val_before_train and self.step == 0 and cfg.val_every_steps:
            self.validate()
        progress = Progress(log, "GRPO step", cfg.steps, start=self.step, every_s=0)
        with preemption.step_loop():  # a scheduler signal waits for the step and its checkpoint, or the export
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                ro, rounds = collect(self.gen, self.task, self.stream, self.reward, cfg,
                                     seed=self.inputs.seed * 1_000_003 + self.step)
                t1 = time.perf_counter()
                metrics = self.train_step(ro)
                t2 = time.perf_counter()
                if self.inputs.generation.backend != "hf":
                    self.sync()
                t3 = time.perf_counter()
                self.step += 1
                tokens = sum(len(c.token_ids) for c in ro.completions)
                metrics.update(self.diagnostics(ro, rounds))
                generate_s = ro.seconds.get("generate", t1 - t0)
                metrics.update({"time/rollout_s": t1 - t0, "time/generate_s": generate_s,
                                "time/score_s": ro.seconds.get("score", 0.0), "time/train_s": t2 - t1,
                                "time/sync_s": t3 - t2, "time/step_s": t3 - t0,
                                "rollout_tokens_per_s": tokens / max(generate_s, 1e-9),
                                "train_tokens_per_s": tokens / max(t2 - t1, 1e-9)})
                logged = {f"rl/{k}": v for k, v in metrics.items()}
                self.tracker.log(logged, step=self.step)
                with open(self.out_dir / STEP_LOG, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": self.step, **logged}) + "\n")
                progress.step(self.step, reward=metrics["reward_mean"],
                              zero_std_groups=metrics["frac_zero_std_groups"])
                if cfg.sample_table_every_steps and self.step % cfg.sample_table_every_steps == 0:
                    self.log_samples(ro)
                if cfg.val_every_steps and (self.step % cfg.val_every_steps == 0 or self.step == cfg.steps):
                    self.validate()
                if checkpoint_due(self.step, cfg.steps, self.trainer):
                    save_checkpoint(self.engine, self.out_dir / "checkpoints", self.step,
                                    {"step": self.step, "consumed": self.stream.consumed},
                                    self.trainer.keep_checkpoints)
                    preemption.exit_if_requested()
            final = self.out_dir / "model"
            export_hf(self.engine, self.tokenizer, final)
            atomic_write_json(self.out_dir / "rl_metrics.json", {"steps": self.step})
            finish_checkpoints(self.out_dir / "checkpoints", self.trainer)
        return final

    def close(self) -> None:
        if self.shared is None:
            self.gen.close()


def rl_stage(inputs: RLInputs, out_dir: Path, rt: Runtime, engine: SharedEngine | None = None) -> Path:
    """The rl stage: GRPO from `inputs.start`; returns `out_dir/model` (reused if a finished run left it there).
    Rollouts come from `engine` when the pipeline lends one (vLLM), else from an engine of the stage's own."""
    if (out_dir / "rl_metrics.json").exists() and (out_dir / "model").exists():
        log.info("GRPO already done in %s; reusing it", out_dir)
        return out_dir / "model"
    with rt.scoring.pool() as pool:
        stage = GRPO(inputs, out_dir, rt, pool, engine)
        try:
            return stage.run_loop()
        finally:
            stage.close()
