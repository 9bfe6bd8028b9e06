"""The SFT stage: a flat, explicit loop over a DeepSpeed engine (no Trainer class), resumable at any step.

Input: a JSONL file of {"messages": [...]} conversations. Output: an HF model directory. Killed and restarted
with the same command, it continues from the last published checkpoint and ends with the same weights.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from pathlib import Path

import torch
import torch.distributed as dist

from skillexp import preemption
from skillexp.models import load_tokenizer
from skillexp.models.config import ModelConfig
from skillexp.progress import Progress
from skillexp.training.forward import head_applies, policy_head
from skillexp.training.head import HEAD_CHUNK
from skillexp.runtime import Runtime
from skillexp.stages import Stage, register
from skillexp.tracking import Tracker
from skillexp.training.config import SFTConfig, SFTInputs, TrainerConfig
from skillexp.training.engine import (build_engine, checkpoint_due, export_hf, finish_checkpoints, init_distributed,
                                      load_checkpoint, load_model, save_checkpoint)
from skillexp.training.launch import check_world, launched, num_processes, run_ranks, slurm_nodes
from skillexp.training.memory import MemoryPlan, ModelShape, plan_for
from skillexp.training.sft_data import (Batch, Example, collate, length_grouped_batches, packed_batches, sft_loss,
                                        tokenize_dataset)
from skillexp.utils.io import atomic_write_json, read_jsonl
from skillexp.utils.schema import ConfigError

log = logging.getLogger(__name__)


def split_val(examples: list[Example], cfg: SFTConfig, seed: int) -> tuple[list[Example], list[Example]]:
    order = list(range(len(examples)))
    random.Random(f"val-{seed}").shuffle(order)
    n_val = min(cfg.max_val_examples, int(len(examples) * cfg.val_fraction))
    return [examples[i] for i in order[n_val:]], [examples[i] for i in order[:n_val]]


def epoch_batches(train: list[Example], cfg: SFTConfig, batch_size: int, seed: int, epoch: int) -> list[Batch]:
    lengths = [len(e.input_ids) for e in train]
    if cfg.packing:
        return packed_batches(lengths, batch_size, cfg.pack_length or cfg.max_length, seed, epoch)
    return length_grouped_batches(lengths, batch_size, seed, epoch)


@torch.no_grad()
def val_loss(engine, examples: list[Example], batch_size: int, pad_id: int, head=None) -> float:
    """Loss per target token over the whole validation set."""
    engine.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        loss, n = sft_loss(engine, collate([[e] for e in examples[i: i + batch_size]], pad_id), head)
        total += float(loss) * n
        count += n
    engine.train()
    return total / max(count, 1)


def run_sft(data_path: Path, model_dir: Path, model_cfg: ModelConfig, trainer: TrainerConfig, cfg: SFTConfig,
            out_dir: Path, tracker: Tracker, seed: int, prefix: str = "sft") -> Path:
    """Fine-tune `model_dir` on `data_path`; returns `out_dir/model`. Checkpoints live in `out_dir/checkpoints`.
    Metrics are logged as `<prefix>/loss` and so on, on their own step axis (one per candidate of an lr search)."""
    final = out_dir / "model"
    if (out_dir / "sft_metrics.json").exists() and final.exists():  # written after the export: a finished stage
        log.info("SFT already done in %s; reusing it", out_dir)
        return final
    tokenizer = load_tokenizer(model_dir, model_cfg)
    conversations = [row["messages"] for row in read_jsonl(data_path)]
    examples, stats = tokenize_dataset(tokenizer, conversations, cfg.max_length, cfg.truncation)
    if not examples:
        raise ConfigError(f"no SFT examples left in {data_path} (dropped {stats.dropped}); check max_length.")
    train, val = split_val(examples, cfg, seed)
    log.info("SFT data: %d train / %d val examples, %d truncated, %d dropped, %.1f%% target tokens",
             len(train), len(val), stats.truncated, stats.dropped, 100 * stats.target_tokens / stats.tokens)

    torch.manual_seed(seed)
    model = load_model(model_dir, trainer)
    init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    trainer = dataclasses.replace(trainer, grad_accum=cfg.grad_accum(trainer, world))
    per_epoch = len(epoch_batches(train, cfg, trainer.micro_batch_size, seed, 0)) // world
    if per_epoch < trainer.grad_accum:
        raise ConfigError(  # the data's size decides it: found when SFT starts, told as a config error
            f"SFT has {per_epoch} micro-batches per epoch per rank ({len(train)} examples), fewer than "
            f"trainer.grad_accum={trainer.grad_accum}: lower trainer.grad_accum or trainer.micro_batch_size, "
            "or build more SFT data.")
    steps_per_epoch = per_epoch // trainer.grad_accum
    total = cfg.max_steps or math.ceil(cfg.epochs * steps_per_epoch)
    engine = build_engine(model, trainer, cfg.optim, total)
    head = policy_head(engine) if cfg.fused_head else None
    ckpt = out_dir / "checkpoints"
    state = load_checkpoint(engine, ckpt) or {"epoch": 0, "batch": 0, "step": 0}
    tracker.rewind(state["step"], prefix)  # metrics.jsonl: none of a killed attempt's steps past the checkpoint
    if state["step"]:
        log.info("resuming SFT at step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch"])
    else:
        tracker.log({f"{prefix}/train_examples": len(train), f"{prefix}/val_examples": len(val),
                     f"{prefix}/truncated": stats.truncated, f"{prefix}/dropped": stats.dropped,
                     f"{prefix}/total_steps": total}, step=0)

    step, epoch, pad = state["step"], state["epoch"], tokenizer.pad_token_id
    tokens, t0 = 0, time.perf_counter()
    progress = Progress(log, "SFT step", total, start=step)
    engine.train()
    with preemption.step_loop():  # a scheduler signal waits for the step and its checkpoint, or the export
        while step < total:
            batches = epoch_batches(train, cfg, trainer.micro_batch_size, seed, epoch)[rank::world][:per_epoch]
            start = state["batch"] if epoch == state["epoch"] else 0
            for b in range(start, len(batches) - len(batches) % trainer.grad_accum):
                rows = [[train[i] for i in row] for row in batches[b]]
                loss, _ = sft_loss(engine, collate(rows, pad), head)
                engine.backward(loss)
                engine.step()
                tokens += sum(len(e.input_ids) for row in rows for e in row)
                if (b + 1) % trainer.grad_accum:
                    continue
                step += 1
                if rank == 0 and progress.due(step):
                    progress.report(step, loss=loss.item())
                if step % trainer.log_every_steps == 0 or step == total:
                    dt = time.perf_counter() - t0
                    tracker.log({f"{prefix}/loss": loss.item(), f"{prefix}/lr": engine.get_lr()[0],
                                 f"{prefix}/epoch": epoch + b / len(batches),
                                 f"{prefix}/tokens_per_s": tokens * world / dt}, step=step)
                    tokens, t0 = 0, time.perf_counter()
                if val and (step % cfg.eval_every_steps == 0 or step == total):
                    tracker.log({f"{prefix}/val_loss": val_loss(engine, val, trainer.micro_batch_size, pad, head)},
                                step=step)
                if checkpoint_due(step, total, trainer):
                    save_checkpoint(engine, ckpt, step, {"epoch": epoch, "batch": b + 1, "step": step},
                                    trainer.keep_checkpoints)
                    preemption.exit_if_requested()
                if step >= total:
                    break
            else:
                epoch += 1
        export_hf(engine, tokenizer, final)
        if rank == 0:
            atomic_write_json(out_dir / "sft_metrics.json", {"steps": step, "examples": len(train)})
        finish_checkpoints(ckpt, trainer)
    return final


def sft_stage(inputs: SFTInputs, out_dir: Path, rt: Runtime) -> None:
    """The sft stage in this process, or on `trainer.num_processes` ranks per node through torchrun (on every node
    of a multi-node Slurm allocation); writes `out_dir/model`. Its metrics are `<rt.prefix>/loss` and so on
    ("sft", or "sft_lr<lr>" for a candidate of an lr search)."""
    n = launched(inputs.trainer)
    check_world(inputs)
    if n:
        run_ranks(inputs, out_dir, rt, n)
    else:
        _on_rank(inputs, out_dir, rt)


def _on_rank(inputs: SFTInputs, out_dir: Path, rt: Runtime) -> Path:
    return run_sft(Path(inputs.data.path), Path(inputs.base.path), inputs.model, inputs.trainer, inputs.sft, out_dir,
                   rt.tracker, inputs.seed, rt.prefix or "sft")


def memory_plan(inputs: SFTInputs, hf_config: dict, gpu_bytes: int) -> MemoryPlan:
    """The stage's per-GPU memory on cards of `gpu_bytes` (training/memory.py), on its engine's ranks."""
    fused = inputs.sft.fused_head and head_applies(hf_config.get("model_type"))
    world = num_processes(inputs.trainer.num_processes) * len(slurm_nodes())
    return plan_for(ModelShape.from_hf_config(hf_config), inputs.trainer, seq_len=inputs.sft.max_length,
                    world_size=world, gpu_bytes=gpu_bytes, logit_rows=HEAD_CHUNK if fused else None)


register(Stage(SFTInputs, sft_stage, output="model", on_rank=_on_rank, memory_plan=memory_plan))
