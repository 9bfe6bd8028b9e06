"""The DeepSpeed engine shared by SFT and GRPO: one process on a CPU, many on GPUs, the same code.

Checkpoints resume exactly: DeepSpeed saves module, optimizer and LR scheduler; we add the data position and every
RNG state as client state, and publish a checkpoint only after it is fully written, by atomically replacing
`latest.json`. A kill mid-save leaves the previous checkpoint as the one that is used.
"""
from __future__ import annotations

import copy
import importlib.util
import math
import os
import random
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillexp import preemption
from skillexp.precision import concrete
from skillexp.training.config import ALL_LINEAR, LoraConfig, OptimConfig, TrainerConfig
from skillexp.training.recompute import enable_checkpointing
from skillexp.training.weights import policy_weights
from skillexp.utils.io import atomic_write_json
from skillexp.utils.schema import ConfigError

LATEST = "latest.json"
_world_seen: list[object] = []  # the default process group DeepSpeed's caches were built for


def init_distributed() -> None:
    """Join the process group a launcher (deepspeed, torchrun, srun) set up, adopt one that another library
    (vLLM) already created, or create a single-process one; gloo on CPU, nccl on GPUs."""
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized() or not _world_seen or dist.group.WORLD is not _world_seen[0]:
        _forget_stale_groups()
    if "LOCAL_RANK" not in os.environ:  # a plain process: deepspeed would otherwise try MPI discovery
        if dist.is_available() and dist.is_initialized():
            rank, world = dist.get_rank(), dist.get_world_size()
        else:
            rank, world = 0, 1
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        for key, value in dict(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=world, MASTER_ADDR="127.0.0.1",
                               MASTER_PORT=port).items():
            os.environ.setdefault(key, str(value))
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    _world_seen[:] = [dist.group.WORLD]


def _forget_stale_groups() -> None:
    """DeepSpeed caches the process groups it saw; an in-process vLLM engine that closed (or an earlier run in a
    Hydra multirun) may have destroyed them since, and a new engine may have made a new default group. Unless the
    default group is the one the caches were built for, drop them so that the next engine builds fresh ones instead
    of failing with "Group ... is not registered"."""
    import deepspeed.comm.comm as ds_comm
    from deepspeed.utils import groups

    ds_comm.cdb = None
    for name, value in vars(groups).copy().items():
        if name.startswith("_") and name.endswith(("_GROUP", "_GROUP_RANKS")):
            setattr(groups, name, {} if isinstance(value, dict) else None)


def lr_lambda(cfg: OptimConfig, total_steps: int):
    """Linear warmup, then cosine decay to `min_lr_ratio` (or constant): a multiplier of the base lr per step."""
    warmup = int(cfg.warmup_ratio * total_steps)

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def ds_config(cfg: TrainerConfig, optim: OptimConfig) -> dict[str, Any]:
    precision = concrete(cfg.precision)
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu"}
    if cfg.offload_param:
        zero["offload_param"] = {"device": "cpu"}
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    out = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": optim.grad_clip,
        "zero_optimization": zero,
        "bf16": {"enabled": precision == "bf16"},
        # dynamic loss scaling (DeepSpeed's defaults) keeps fp16 gradients from underflowing
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if cfg.offload_optimizer:  # DeepSpeed's CPU Adam; a client torch optimizer cannot be offloaded
        out["optimizer"] = {"type": "AdamW", "params": {"lr": optim.lr, "betas": list(optim.betas),
                                                        "weight_decay": optim.weight_decay}}
    if cfg.lora is not None and cfg.lora.optimizer == "paged_adamw_8bit" and cfg.zero_stage >= 1:
        out["zero_allow_untested_optimizer"] = True  # DeepSpeed's ZeRO lists only its own and torch's Adam kinds
    return out


def require_bitsandbytes(setting: str, fix: str) -> None:
    """QLoRA's 4-bit weights and the paged 8-bit optimizer are bitsandbytes' CUDA kernels: on a machine without
    them, fail before anything loads, naming what is missing and the setting (`fix`) that does without."""
    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (none is visible)")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("bitsandbytes (`pip install bitsandbytes`)")
    if missing:
        raise ConfigError(f"{setting} needs {' and '.join(missing)}: run it on a GPU machine with bitsandbytes "
                          f"installed, or set {fix}.")


def load_model(model_dir: Path | str, trainer: TrainerConfig) -> torch.nn.Module:
    """The model a training stage starts from: fp32 weights, or with `trainer.lora.quantize=nf4` (QLoRA) frozen
    4-bit NF4 base weights (bitsandbytes, double quantization, bf16 compute) on this rank's GPU, prepared by peft
    for k-bit training (layer norms and embeddings in fp32); `build_engine` then adds the adapters."""
    from transformers import AutoModelForCausalLM

    if trainer.lora is None or trainer.lora.quantize is None:
        return AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    require_bitsandbytes("trainer.lora.quantize=nf4", "trainer.lora.quantize=null (plain LoRA)")
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), quantization_config=quantization, dtype=torch.bfloat16,
        device_map={"": int(os.environ.get("LOCAL_RANK", 0))})  # 4-bit weights are quantized onto the GPU
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=trainer.gradient_checkpointing is True)


def add_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    """`model` with peft LoRA adapters on `lora.target_modules` (`[all-linear]`: every linear layer but the
    output head); B starts at 0, so the model is unchanged; only the adapters train."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = list(lora.target_modules)
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                            target_modules=ALL_LINEAR if targets == [ALL_LINEAR] else targets)
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # peft: none of the names is a module of this model
        raise ConfigError(f"trainer.lora.target_modules={list(lora.target_modules)}: {e}") from e


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainerConfig, optim: OptimConfig):
    """The stage's client optimizer: torch's fused AdamW, or bitsandbytes' PagedAdamW8bit (QLoRA's: 8-bit states that
    page to CPU memory under pressure); None where DeepSpeed brings its own (offload)."""
    if cfg.offload_optimizer:
        return None
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    if cfg.lora is not None and cfg.lora.optimizer == "paged_adamw_8bit":
        require_bitsandbytes("trainer.lora.optimizer=paged_adamw_8bit", "trainer.lora.optimizer=adamw")
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(params, **kwargs)
    # fused: one kernel over all tensors, on CPUs and GPUs alike (on a CPU torch's default is a per-tensor loop)
    return torch.optim.AdamW(params, **kwargs, fused=True)


def build_engine(model: torch.nn.Module, cfg: TrainerConfig, optim: OptimConfig, total_steps: int):
    """A DeepSpeed engine (`cfg`) over `model` (from `load_model`) with the stage's optimizer and schedule
    (`optim`), stepped once per optimizer step. With `trainer.lora` the engine trains LoRA adapters only."""
    import deepspeed

    init_distributed()
    enable_checkpointing(model, cfg.gradient_checkpointing)
    if cfg.lora is not None:  # TrainerConfig refuses ZeRO-3 with it
        model = add_lora(model, cfg.lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg, optim)
    config = ds_config(cfg, optim)
    # the scheduler wraps DeepSpeed's optimizer; engine.step() steps it at each accumulation boundary
    engine, *_ = deepspeed.initialize(
        model=model, model_parameters=params, optimizer=optimizer, config=config,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(optim, total_steps)))
    import torch.distributed as dist

    if cfg.zero_stage == 0 and dist.get_world_size() == 1:
        # one rank: nothing to average, yet ZeRO-0's all-reduce would flatten every gradient into buckets, reduce
        # them over a group of one and copy them back, at every update (~2 s for 135M parameters on 2 CPU cores)
        engine.enable_backward_allreduce = False
    return engine


def unrecorded_grad_norm(engine) -> float | None:
    """The gradient's 2-norm before clipping, for the engines that do not record it (ZeRO-0 with a torch optimizer,
    whose `get_global_grad_norm()` stays None): call after the last backward of an update (DeepSpeed has averaged
    the gradients over the ranks by then) and before `step()`. None where DeepSpeed records it."""
    if engine.zero_optimization_stage() != 0 or hasattr(engine.optimizer, "_global_grad_norm"):
        return None
    grads = [p.grad.detach().float() for p in engine.module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(engine, ckpt_dir: Path, step: int, client_state: dict[str, Any], keep: int = 1) -> None:
    """Write `ckpt_dir/step_<n>`, then publish it in latest.json, then prune older ones."""
    tag = f"step_{step}"
    engine.save_checkpoint(str(ckpt_dir), tag=tag, client_state={**client_state, "rng": rng_state()},
                           save_latest=False)
    if engine.global_rank == 0:
        atomic_write_json(ckpt_dir / LATEST, {"tag": tag, "step": step})
        tags = sorted((p for p in ckpt_dir.glob("step_*") if p.is_dir()), key=lambda p: int(p.name[5:]))
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    import torch.distributed as dist

    dist.barrier()


def stop_requested() -> bool:
    """Has the scheduler signalled any rank? Every rank calls this at the same step (one all-reduce when there are
    several), so all of them save the same checkpoint and stop together."""
    import torch.distributed as dist

    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return preemption.requested()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    flag = torch.tensor([preemption.signal_number()], dtype=torch.int64, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if flag.item() and not preemption.requested():
        preemption.adopt(int(flag.item()))
    return bool(flag.item())


def checkpoint_due(step: int, total: int, cfg: TrainerConfig) -> bool:
    """Save now? On a scheduler's signal (to any rank); at the last step only when the checkpoint outlives the
    stage (`keep_final_checkpoint`: otherwise the export right after makes it dead weight); else every
    `save_every_steps`."""
    if stop_requested():
        return True
    return cfg.keep_final_checkpoint if step == total else step % cfg.save_every_steps == 0


def finish_checkpoints(ckpt_dir: Path, cfg: TrainerConfig) -> None:
    """After the export: a finished stage's output is its model; drop the resumable state unless asked to keep it."""
    import torch.distributed as dist

    if not cfg.keep_final_checkpoint and dist.get_rank() == 0:
        shutil.rmtree(ckpt_dir, ignore_errors=True)


def load_checkpoint(engine, ckpt_dir: Path) -> dict[str, Any] | None:
    """Restore the published checkpoint, if any; returns its client state (data position etc.)."""
    import json

    latest = ckpt_dir / LATEST
    if not latest.exists():
        return None
    tag = json.loads(latest.read_text())["tag"]
    _, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
    set_rng_state(client["rng"])
    return client


def _plain_twin(peft_model) -> torch.nn.Module:
    """An unquantized, weightless (meta) copy of a LoRA model's base model, whose `save_pretrained` writes the
    base's config (less any 4-bit quantization) and generation config around the merged weights it is given."""
    base = peft_model.get_base_model()
    config = copy.deepcopy(base.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        twin = type(base)(config)
    twin.generation_config = copy.deepcopy(base.generation_config)
    return twin


def export_hf(engine, tokenizer, out_dir: Path) -> None:
    """Save a plain HF model directory (weights in the model's dtype, tokenizer included), atomically. A LoRA
    model is saved merged, under the base checkpoint's names, and the engine's model stays as it was."""
    import torch.distributed as dist
    from peft import PeftModel

    module = engine.module
    if isinstance(module, PeftModel):  # merged on the fly; under ZeRO-3 every rank takes part in the gathers
        zero3 = engine.zero_optimization_stage() == 3
        state = dict(policy_weights(engine)) if engine.global_rank == 0 or zero3 else None
        module = _plain_twin(module) if engine.global_rank == 0 else None
    else:
        state = engine._zero3_consolidated_16bit_state_dict() if engine.zero_optimization_stage() == 3 else None
    if engine.global_rank == 0:
        tmp = out_dir.with_name(f".{out_dir.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        module.save_pretrained(tmp, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    dist.barrier()
