"""The rl stage: GRPO from the model the stages before it made, in this process or on torchrun's ranks, with what
a run that reuses it logs again and its per-GPU memory plan."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from skillexp.rl.config import RLInputs
from skillexp.training.forward import head_applies
from skillexp.rl.grpo import STEP_LOG, replayed_steps, run_grpo
from skillexp.training.config import SELECTIVE
from skillexp.training.head import HEAD_CHUNK
from skillexp.runtime import Runtime
from skillexp.stages import Stage, register
from skillexp.training.launch import check_world, launched, num_processes, run_ranks, slurm_nodes
from skillexp.training.memory import MemoryPlan, ModelShape, plan_for

log = logging.getLogger(__name__)


def rl_stage(inputs: RLInputs, out_dir: Path, rt: Runtime) -> None:
    """GRPO from `inputs.start` into `out_dir/model` (kept if a finished run left it there). In this process,
    rollouts come from the run's engine `rt.engine` when the pipeline lends one (vLLM), else from an engine of the
    stage's own; on several ranks (torchrun), each rank samples on an engine of its own, and the lent one is shut
    down first to give its memory back."""
    if (out_dir / "rl_metrics.json").exists() and (out_dir / "model").exists():
        log.info("GRPO already done in %s; reusing it", out_dir)
        return
    ranks = launched(inputs.trainer)
    check_world(inputs)
    if not ranks:
        run_grpo(inputs, out_dir, rt)
        return
    if rt.engine is not None:
        rt.engine.close()
    run_ranks(inputs, out_dir, rt, ranks)


def _replay(inputs: RLInputs, out_dir: Path, rt: Runtime) -> None:
    """A reused stage's per-step metrics, logged again: every run shows its reward curve."""
    if (out_dir / STEP_LOG).exists():
        rt.tracker.rewind(0, "rl")  # a requeued run's first attempt may have logged them already
        for step, metrics in sorted(replayed_steps(out_dir / STEP_LOG).items()):
            rt.tracker.log(metrics, step=step)


def memory_plan(inputs: RLInputs, hf_config: dict, gpu_bytes: int) -> MemoryPlan:
    """The stage's per-GPU memory on cards of `gpu_bytes` (training/memory.py): the policy, its optimizer, the
    rollout engine's share, and the reference model when a KL term needs one."""
    fused = inputs.rl.fused_head and head_applies(hf_config.get("model_type"))
    world = num_processes(inputs.trainer.num_processes) * len(slurm_nodes())
    trainer = inputs.trainer
    if trainer.gradient_checkpointing == SELECTIVE and inputs.rl.shares_prompt(trainer):
        trainer = dataclasses.replace(trainer, gradient_checkpointing=False)  # the shared forward recomputes nothing
    return plan_for(ModelShape.from_hf_config(hf_config), trainer, seq_len=inputs.model.max_model_len,
                    world_size=world, gpu_bytes=gpu_bytes, generation=inputs.generation,
                    kl_reference=inputs.rl.kl_coef > 0, logit_rows=HEAD_CHUNK if fused else None)


register(Stage(RLInputs, rl_stage, output="model", uses_engine=True, replay=_replay,
               on_rank=run_grpo, memory_plan=memory_plan))
