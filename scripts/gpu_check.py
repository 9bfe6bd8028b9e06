"""The GPU check: the training and eval paths this project has only run on CPUs, run once on a CUDA GPU, and the
memory plan (skillexp/training/memory.py) set against torch.cuda.max_memory_allocated.

`scripts/gpu_check.sh` sets up the missing packages and calls this; run alone it needs them installed already.
Each step is a subprocess with its own timeout; one failing does not stop the others:

  sft_zero2, sft_zero3        SFT on the tiny model through `python -m skillexp` (generation=hf, bf16, 1 process)
  sft_zero2_2gpu, ..._zero3   the same on 2 processes (torchrun), only when 2 GPUs are visible
  grpo_zero2                  GRPO with HF rollouts (rl=grpo_cpu shrunk to 3 steps), bf16, ZeRO-2
  grpo_zero2_shared           the same without gradient checkpointing: the shared-prompt forward (off under it)
  sft_lora, grpo_lora[_shared]  the same with trainer.lora (peft adapters)
  sft_qlora, grpo_qlora       trainer=qlora (4-bit NF4 base, paged 8-bit AdamW), only if
                              `import bitsandbytes` works
  eval_hf                     the eval stage alone (method=none rl=none), HF generate in bf16
  mem_zero{0,2,3}[_ckpt]      a random 0.85B Llama-style model in bf16 on the GPU, wrapped by build_engine, a few
                              steps at micro-batch 2 x 1,024 tokens, measured beside plan_for's numbers

Usage:
  python scripts/gpu_check.py [--out DIR] [--jobs N] [--budget-s S] [--only a,b] [--allow-cpu]
  python scripts/gpu_check.py --dry-run [--validate]    print the commands (and compose + validate each config)

Writes DIR/gpu_check.json (and DIR/gpu_check.log, every step's log); exits 1 when a step that ran failed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30

# --- the steps' overrides ---------------------------------------------------------------------------------------------
# budgets only, as tests/test_main.py, tests/rl/test_grpo.py and conf/experiment/smoke.yaml shrink a tiny run; every
# stage dir stays in the run dir (no shared stage cache), so each step computes everything it names
COMMON = ["logger=none", "paths.stage_cache_dir=null"]
ONE_GPU = ["trainer.num_processes=1", "trainer.precision=bf16"]
# SFT data (method=sft) -> SFT (4 steps, a checkpoint at step 2) -> eval (7 variants x 3 items), tiny model, HF
SFT = ["experiment=smoke", *COMMON]
# the task's verifier (0 for the random tiny model) + tests/rl/rewards.py's learnable share of "a"s, so that the
# advantages, and the gradients, are not all 0
REWARDS = "rl.rewards=[{fn: task, weight: 1.0}, {fn: tests.rl.rewards.letter_a, weight: 1.0}]"
# GRPO from the base model: 3 steps of 8 prompts x 8 rollouts of 32 tokens, shared-prompt forward (micro-batch 16 =
# 2 whole groups), validation at step 2, a checkpoint at step 2; pre-RL and final eval cut to 2 items x 2 samples
GRPO = ["model=tiny", "generation=hf", "method=none", "rl=grpo_cpu", *COMMON, "+task.num_rl=64", "rl.steps=3",
        "rl.prompts_per_step=8", "rl.group_size=8", "rl.mini_batch_prompts=8", "rl.sampling.max_tokens=32",
        "rl.optim.lr=1e-3", "rl.val_every_steps=2", "rl.val_num_items=2", "rl.save_every_steps=2", REWARDS,
        "trainer.micro_batch_size=16", "eval.num_items=2", "eval.k=2", "eval.pass_k=[1]",
        "eval.sampling.max_tokens=16", "scoring.workers=0"]
LORA = ["trainer.lora={r: 16, alpha: 32}"]
# the GPU presets all turn gradient checkpointing on, under which GRPO runs each completion with its prompt (no KV
# cache under checkpointing): the shared-prompt forward (rl.share_prompt) is checked without checkpointing
SHARED = ["trainer.gradient_checkpointing=false"]
# the eval stage alone on the tiny model in bf16 (the real models' dtype), scoring in 2 worker processes
EVAL = ["model=tiny", "model.dtype=bfloat16", "generation=hf", "method=none", "rl=none", "eval=countdown_cpu",
        *COMMON, "eval.num_items=3", "eval.k=2", "eval.pass_k=[1,2]", "eval.sampling.max_tokens=24",
        "scoring.workers=2"]

# the memory cases: TinyLlama-1.1B's layer shape with 16 layers (0.85B parameters), random weights
MEM_SHAPE = dict(hidden_size=2048, num_hidden_layers=16, intermediate_size=5632, vocab_size=32000,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096,
                 tie_word_embeddings=False)
MEM_ITERS = 4


@dataclass(frozen=True)
class MemCase:
    """One memory case: the engine, the batch, and what the update computes (SFT's loss from the logits; GRPO's
    policy-gradient loss from the completion log-probs, through the head in blocks or the full logits)."""

    zero: int
    ckpt: bool
    kind: str = "sft"  # "sft", "grpo" (rl.fused_head, the default), "grpo_logits" (rl.fused_head=false)
    batch: int = 2
    seq: int = 1024
    prompt: int = 512  # GRPO: prompt tokens of each sequence; the rest is the completion
    expandable: bool = False  # PyTorch's expandable_segments allocator
    lora: str = ""  # "lora": trainer.lora's defaults (r 16, attention and MLP); "qlora": trainer=qlora's (NF4 base)

    @classmethod
    def of(cls, data: dict[str, Any]) -> MemCase:
        """The case of a memory case's saved data (the first reports hold only the stage and checkpointing)."""
        return cls(**data["case"]) if "case" in data else cls(data["zero_stage"], data["gradient_checkpointing"])

    @property
    def name(self) -> str:
        size = "" if (self.batch, self.seq) == (2, 1024) else f"_{self.batch}x{self.seq}"
        return (f"mem_zero{self.zero}{'_ckpt' if self.ckpt else ''}{'' if self.kind == 'sft' else '_' + self.kind}"
                f"{'_' + self.lora if self.lora else ''}{size}{'_expandable' if self.expandable else ''}")


MEM_CASES = [MemCase(0, False), MemCase(0, True), MemCase(2, False), MemCase(2, True), MemCase(3, False),
             MemCase(3, True), MemCase(2, False, expandable=True),
             # a GRPO update at a paper-like length (512 prompt + 3,584 completion tokens, micro-batch 4)
             MemCase(2, True, batch=4, seq=4096), MemCase(2, True, "grpo", batch=4, seq=4096),
             MemCase(2, True, "grpo_logits", batch=4, seq=4096), MemCase(2, False, "grpo", batch=4, seq=4096),
             # adapters: LoRA over the bf16 base, QLoRA over the NF4 base with the paged 8-bit AdamW
             MemCase(2, True, lora="lora"), MemCase(0, True, lora="qlora")]
MEM_DEVICE = "cuda"  # where the model is built (a rehearsal of this code on a CPU patches it)

# failures seen before, by a string of their log -> what is known about them
KNOWN: dict[str, str] = {}
# a DeepSpeed that did not see the GPU says this; on a GPU machine that is a failure of the step
CPU_FALLBACK = "Setting accelerator to CPU"
# module -> pip name, for the import check's message (the wheels scripts/gpu_check.sh installs, and the image's)
REQUIRED = {"torch": "torch", "transformers": "transformers", "tokenizers": "tokenizers", "peft": "peft",
            "safetensors": "safetensors", "accelerate": "accelerate", "deepspeed": "deepspeed", "hjson": "hjson",
            "pydantic": "pydantic (+ pydantic_core, annotated-types, typing-inspection)", "hydra": "hydra-core",
            "omegaconf": "omegaconf", "antlr4": "antlr4-python3-runtime", "yaml": "pyyaml", "filelock": "filelock",
            "psutil": "psutil", "numpy": "numpy", "jinja2": "jinja2", "huggingface_hub": "huggingface-hub",
            # the project's own modules on the steps' paths: a missing dependency of theirs shows here
            "skillexp.pipeline": "(skillexp: a dependency above)", "skillexp.training.engine": "(skillexp)",
            "skillexp.rl.grpo": "(skillexp)", "skillexp.eval.stage": "(skillexp)"}


@dataclass
class Step:
    name: str
    what: str
    argv: list[str]
    timeout: int
    heavy: bool = False  # the memory cases: one at a time, beside the light steps
    skip: str | None = None  # why it does not run here
    check: Callable[[Path, str], list[str]] | None = None  # problems found in the run dir and the log
    result_file: Path | None = None  # a memory case's JSON


@dataclass
class Result:
    name: str
    what: str
    status: str  # PASS, FAIL, SKIP
    seconds: float = 0.0
    returncode: int | None = None
    detail: str = ""
    command: str = ""
    log_tail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


# --- checks on a finished CLI run -------------------------------------------------------------------------------------
def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _summary(run: Path) -> dict[str, float]:
    path = run / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _eval_problems(run: Path, prefix: str = "") -> list[str]:
    summary = _summary(run)
    if not summary:
        return ["no summary.json"]
    if not any(k.startswith(f"{prefix}countdown_3/mean@") for k in summary):
        return [f"summary.json has no {prefix}countdown_3/mean@k"]
    return []


def check_sft(run: Path, log: str) -> list[str]:
    problems = _eval_problems(run)
    if not (run / "sft" / "model" / "model.safetensors").exists():
        problems.append("no exported sft/model/model.safetensors")
    losses = [r["sft/loss"] for r in _jsonl(run / "metrics.jsonl") if "sft/loss" in r]
    if len(losses) != 4:
        problems.append(f"{len(losses)} SFT steps logged, 4 expected")
    elif not all(math.isfinite(x) for x in losses):
        problems.append(f"SFT loss not finite: {losses}")
    return problems


def check_grpo(run: Path, log: str) -> list[str]:
    problems = _eval_problems(run) + _eval_problems(run, "pre_rl/")
    if not (run / "rl" / "model" / "model.safetensors").exists():
        problems.append("no exported rl/model/model.safetensors")
    rows = [r for r in _jsonl(run / "metrics.jsonl") if "rl/reward_mean" in r]
    if len(rows) != 3:
        problems.append(f"{len(rows)} GRPO steps logged, 3 expected")
    else:
        norms = [r.get("rl/grad_norm") for r in rows]
        if any(n is None or not math.isfinite(n) for n in norms) or not any(norms):
            problems.append(f"rl/grad_norm per step {norms}: expected finite and not all 0")
    return problems


def check_eval(run: Path, log: str) -> list[str]:
    problems = _eval_problems(run)
    if not list((run / "eval" / "generations").glob("*.jsonl")):
        problems.append("no eval/generations/*.jsonl")
    return problems


def cli_detail(run: Path) -> tuple[str, dict[str, Any]]:
    """A line, and numbers for the report, from a CLI run dir."""
    rows = _jsonl(run / "metrics.jsonl")
    data: dict[str, Any] = {}
    parts = []
    losses = [r["sft/loss"] for r in rows if "sft/loss" in r]
    if losses:
        data["sft_loss"] = losses
        parts.append(f"SFT loss {losses[0]:.3f} -> {losses[-1]:.3f} ({len(losses)} steps)")
    rewards = [r for r in rows if "rl/reward_mean" in r]
    if rewards:
        keys = ("step", "rl/reward_mean", "rl/grad_norm", "rl/time/step_s", "rl/time/generate_s", "rl/time/train_s",
                "rl/memory/peak_gpu_gib", "rl/memory/peak_rss_gib")  # the memory keys where the stage logs them
        data["rl"] = [{k: r[k] for k in keys if k in r} for r in rewards]
        parts.append(f"GRPO {len(rewards)} steps, reward {rewards[-1]['rl/reward_mean']:.3f}, grad_norm "
                     f"{rewards[-1].get('rl/grad_norm', float('nan')):.3g}")
    summary = _summary(run)
    if summary:
        data["summary"] = {k: v for k, v in summary.items() if k.startswith(("avg/", "pre_rl/avg/"))}
        variants = {k.split("/")[0] for k in summary if "/mean@" in k and not k.startswith(("avg", "pre_rl"))}
        parts.append(f"eval {len(variants)} variants")
    return "; ".join(parts), data


# --- the steps --------------------------------------------------------------------------------------------------------
def cli(overrides: list[str], run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "skillexp", *overrides, f"hydra.run.dir={run_dir}"]


def plan_steps(work: Path, info: dict[str, Any], timeout: int) -> list[Step]:
    gpus = info.get("cuda_devices", 0)
    cuda = info.get("cuda", False)
    bnb = info.get("bitsandbytes")
    two = None if gpus >= 2 else f"{gpus} GPU(s) visible: 2 processes need 2"
    qlora = (None if cuda and bnb == "ok" else
             "no CUDA device" if not cuda else f"`import bitsandbytes` failed: {bnb}")
    steps = [
        Step("sft_zero2", "SFT tiny, ZeRO-2, bf16, 1 process, HF eval",
             cli([*SFT, "trainer=zero2", *ONE_GPU], work / "sft_zero2"), timeout, check=check_sft),
        Step("sft_zero3", "SFT tiny, ZeRO-3, bf16, 1 process, HF eval",
             cli([*SFT, "trainer=zero3", *ONE_GPU], work / "sft_zero3"), timeout, check=check_sft),
        Step("grpo_zero2", "GRPO tiny, HF rollouts, ZeRO-2, bf16",
             cli([*GRPO, "trainer=zero2", *ONE_GPU], work / "grpo_zero2"), timeout, check=check_grpo),
        Step("grpo_zero2_shared", "GRPO tiny, HF rollouts, ZeRO-2, bf16, shared-prompt forward (no checkpointing)",
             cli([*GRPO, "trainer=zero2", *ONE_GPU, *SHARED], work / "grpo_zero2_shared"), timeout,
             check=check_grpo),
        Step("sft_lora", "SFT tiny, LoRA r16, ZeRO-2, bf16",
             cli([*SFT, "trainer=zero2", *ONE_GPU, *LORA], work / "sft_lora"), timeout, check=check_sft),
        Step("grpo_lora", "GRPO tiny, LoRA r16, ZeRO-2, bf16",
             cli([*GRPO, "trainer=zero2", *ONE_GPU, *LORA], work / "grpo_lora"), timeout, check=check_grpo),
        Step("grpo_lora_shared", "GRPO tiny, LoRA r16, ZeRO-2, bf16, shared-prompt forward (no checkpointing)",
             cli([*GRPO, "trainer=zero2", *ONE_GPU, *LORA, *SHARED], work / "grpo_lora_shared"), timeout,
             check=check_grpo),
        Step("eval_hf", "eval stage alone, HF generate, bf16",
             cli(EVAL, work / "eval_hf"), timeout, check=check_eval),
        Step("sft_qlora", "SFT tiny, trainer=qlora (NF4 + paged AdamW 8-bit)",
             cli([*SFT, "trainer=qlora"], work / "sft_qlora"), timeout, skip=qlora, check=check_sft),
        Step("grpo_qlora", "GRPO tiny, trainer=qlora",
             cli([*GRPO, "trainer=qlora"], work / "grpo_qlora"), timeout, skip=qlora, check=check_grpo),
        Step("sft_zero2_2gpu", "SFT tiny, ZeRO-2, bf16, 2 processes (torchrun)",
             cli([*SFT, "trainer=zero2", "trainer.num_processes=2", "trainer.precision=bf16"],
                 work / "sft_zero2_2gpu"), timeout, skip=two, check=check_sft),
        Step("sft_zero3_2gpu", "SFT tiny, ZeRO-3, bf16, 2 processes (torchrun)",
             cli([*SFT, "trainer=zero3", "trainer.num_processes=2", "trainer.precision=bf16"],
                 work / "sft_zero3_2gpu"), timeout, skip=two, check=check_sft),
    ]
    for case in MEM_CASES:
        out = work / f"{case.name}.json"
        steps.append(Step(case.name, f"memory plan vs measured, 0.85B, {case.kind}, ZeRO-{case.zero}, checkpointing "
                          f"{'on' if case.ckpt else 'off'}, {case.batch} x {case.seq} tokens"
                          f"{', expandable_segments' if case.expandable else ''}",
                          [sys.executable, str(Path(__file__).resolve()), "--memory-case", json.dumps(asdict(case)),
                           "--case-out", str(out)], timeout, heavy=True, result_file=out,
                          skip=None if cuda else "no CUDA device"))
    return steps


# --- running ----------------------------------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    if str(REPO) not in path.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), path) if p)
    env.update(PYTHONUNBUFFERED="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", DS_BUILD_OPS="0")
    env.setdefault("OMP_NUM_THREADS", "3")  # several steps share the machine's cores
    return env


def run_process(argv: list[str], log_path: Path, timeout: float, cwd: Path) -> tuple[int | None, str]:
    """Run `argv` in its own process group (torchrun's ranks, scoring workers: all of them go on a timeout);
    returns (exit status or None on a timeout, the log)."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=child_env(),
                                start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            code = None
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
    return code, log_path.read_text(errors="replace")


def last_error(log: str) -> str:
    """The line that says what went wrong, from the end of a log."""
    lines = [line.strip() for line in log.replace("\r", "\n").splitlines() if line.strip()]
    missing = sorted(set(re.findall(r"No module named '([\w.]+)'", log)))
    if missing:
        return f"missing module(s): {', '.join(missing)}"
    for line in reversed(lines):
        if re.search(r"(Error|Exception|error:|Traceback|FAILED|Killed)", line) and not line.startswith("File "):
            return line[:300]
    return lines[-1][:300] if lines else "(no output)"


def run_step(step: Step, work: Path, deadline: float, allow_cpu: bool) -> Result:
    command = " ".join(shlex.quote(a) for a in step.argv)
    res = Result(step.name, step.what, "SKIP", command=command)
    if step.skip:
        res.detail = step.skip
        return res
    left = deadline - time.monotonic()
    if left < 20:
        res.detail = "out of the time budget (--budget-s)"
        return res
    timeout = min(step.timeout, left)
    t0 = time.monotonic()
    code, log = run_process(step.argv, work / f"{step.name}.log", timeout, work)
    res.seconds, res.returncode = round(time.monotonic() - t0, 1), code
    res.log_tail = "\n".join(log.replace("\r", "\n").splitlines()[-40:])
    run_dir = work / step.name
    problems: list[str] = []
    if code is None:
        problems.append(f"timed out after {timeout:.0f} s")
    elif code != 0:
        problems.append(f"exit status {code}: {last_error(log)}")
        problems += [hint for pattern, hint in KNOWN.items() if pattern in log]
    if code == 0 and step.check:
        problems += step.check(run_dir, log)
    if code == 0 and not allow_cpu and CPU_FALLBACK in log:
        problems.append(f"DeepSpeed fell back to the CPU ('{CPU_FALLBACK}')")
    if step.result_file is not None and step.result_file.exists():
        res.data = json.loads(step.result_file.read_text())
    elif step.result_file is not None and code == 0:
        problems.append("the case wrote no result")
    if step.check is not None and run_dir.exists():
        detail, data = cli_detail(run_dir)
        res.data.update(data)
        res.detail = detail
    if "memory plan of the" in log:
        res.data["memory_plan_logged"] = True
    res.status = "FAIL" if problems else "PASS"
    if problems:
        res.detail = "; ".join(problems) + (f" [{res.detail}]" if res.detail else "")
    elif step.heavy and res.data:
        m = res.data["ratio"]
        res.detail = (f"measured/plan: static {m['static']:.2f}, fwd/bwd {m['fwd_bwd']:.2f}, step {m['step']:.2f}, "
                      f"peak {m['peak']:.2f}")
        if res.data["params_model"] != res.data["params_plan"]:
            res.detail += f" (params: model {res.data['params_model']:,}, plan {res.data['params_plan']:,})"
    return res


def run_all(steps: list[Step], work: Path, jobs: int, deadline: float, allow_cpu: bool) -> list[Result]:
    """Light steps on `jobs - 1` workers, the memory cases one at a time beside them (jobs=1: all in a row); none
    starts, and a running one stops, at `deadline` (time.monotonic())."""
    start = time.monotonic()
    lock = threading.Lock()
    results: dict[str, Result] = {}

    def one(step: Step) -> None:
        res = run_step(step, work, deadline, allow_cpu)
        with lock:
            results[step.name] = res
            print(f"[{time.monotonic() - start:5.0f}s] {res.status:4} {step.name:19} {res.seconds:6.1f}s  "
                  f"{res.detail}", flush=True)

    if jobs <= 1:
        for step in steps:
            one(step)
    else:
        with ThreadPoolExecutor(max(1, jobs - 1)) as light, ThreadPoolExecutor(1) as heavy:
            futures = [(heavy if s.heavy else light).submit(one, s) for s in steps]
            for f in futures:
                f.result()
    return [results[s.name] for s in steps]


# --- environment probe and import check (a subprocess: the parent imports no torch) -----------------------------------
def probe() -> dict[str, Any]:
    import importlib
    import platform

    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(), "missing": {}}
    for module, pip_name in REQUIRED.items():
        try:
            mod = importlib.import_module(module)
            if "." not in module:
                info.setdefault("versions", {})[module] = getattr(mod, "__version__", "?")
        except Exception as e:  # noqa: BLE001 - any import failure is what this reports
            info["missing"][module] = f"{pip_name}: {type(e).__name__}: {e}"
    try:
        import torch

        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda=torch.cuda.is_available(),
                    cuda_devices=torch.cuda.device_count() if torch.cuda.is_available() else 0,
                    cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None)
        if info["cuda"]:
            info["gpus"] = [{"name": torch.cuda.get_device_name(i),
                             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / GiB, 2),
                             "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                             "bf16": torch.cuda.is_bf16_supported()} for i in range(info["cuda_devices"])]
    except Exception as e:  # noqa: BLE001
        info.update(cuda=False, cuda_devices=0, torch_error=f"{type(e).__name__}: {e}")
    try:
        import bitsandbytes

        info["bitsandbytes"] = "ok"
        info.setdefault("versions", {})["bitsandbytes"] = getattr(bitsandbytes, "__version__", "?")
    except Exception as e:  # noqa: BLE001
        info["bitsandbytes"] = f"{type(e).__name__}: {e}"[:300]
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    return info


# --- one memory case (its own process) and its comparison with the plan ---------------------------------------------
def case_trainer(case: MemCase):
    from skillexp.training.config import LoraConfig, TrainerConfig

    lora = {"": None, "lora": LoraConfig(),
            "qlora": LoraConfig(quantize="nf4", optimizer="paged_adamw_8bit")}[case.lora]
    return TrainerConfig(name="gpu_check", num_processes=1, zero_stage=case.zero, precision="bf16",
                         micro_batch_size=case.batch, grad_accum=1, gradient_checkpointing=case.ckpt, lora=lora)


def case_plan(case: MemCase, gpu_bytes: int):
    """plan_for's numbers for a memory case (vllm_fraction 0: no vLLM beside the update; GRPO's head in blocks of
    training/head.py's HEAD_CHUNK rows, as pipeline.py plans it)."""
    from skillexp.training.head import HEAD_CHUNK
    from skillexp.training.memory import ModelShape, plan_for

    shape = ModelShape.from_hf_config({"model_type": "llama", **MEM_SHAPE})
    return plan_for(shape, case_trainer(case), seq_len=case.seq, world_size=1, gpu_bytes=gpu_bytes,
                    logit_rows=HEAD_CHUNK if case.kind == "grpo" else None)


def compare(plan, measured: dict[str, int]) -> tuple[dict[str, int], dict[str, float]]:
    """The plan's numbers for what a case measures, and measured / planned. static: the training state with its
    gradients (measured: allocated after the backward, activations freed); fwd_bwd and step: the peak of each
    phase; peak: the highest of all, the engine's start-up included."""
    phases = {k: sum(v.values()) for k, v in plan.phases().items()}
    planned = {"static": plan.static, "fwd_bwd": phases["update: forward/backward"],
               "step": phases["update: optimizer step"], "peak": plan.peak, "required": plan.required}
    return planned, {k: measured[k] / planned[k] for k in ("static", "fwd_bwd", "step", "peak")}


def replan(report: Path) -> str:
    """The memory table of a saved gpu_check.json, its measurements set against the current plan."""
    saved = json.loads(report.read_text())
    gpu_bytes = int(saved["env"]["gpus"][0]["memory_gib"] * GiB)  # older reports keep the card's size only here
    results = []
    for step in saved["steps"]:
        data = step.get("data") or {}
        if not data.get("measured"):
            continue
        plan = case_plan(MemCase.of(data), data.get("gpu_bytes") or gpu_bytes)
        measured = {**data["measured"], "static": data["iters"][-1]["after_backward"]}
        planned, ratio = compare(plan, measured)
        results.append(Result(step["name"], step["what"], step["status"],
                              data={**data, "measured": measured, "plan": planned, "ratio": ratio}))
    return memory_table(results)


def update_loss(engine, case: MemCase, ids, head):
    """The loss of one micro-batch: SFT's (as the SFT loop: only the loss outlives the forward), or GRPO's policy
    gradient on the completion tokens' log-probs with their entropies (as rl/grpo.py's update computes them)."""
    import torch

    from skillexp.training.forward import completion_logprobs
    from skillexp.training.sft_data import forward

    if case.kind == "sft":
        return forward(engine, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}).loss
    rows, width = ids.shape
    mask = torch.ones(rows, width - case.prompt, dtype=torch.long, device=ids.device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": mask,
             "position_ids": torch.arange(width, device=ids.device).expand(rows, -1)}
    logp, _ = completion_logprobs(engine, batch, 1.0, head, entropy=True)  # the entropies are statistics only
    advantages = torch.linspace(-1, 1, rows, device=ids.device)[:, None]
    return -(advantages * torch.exp(logp - logp.detach())).sum() / mask.sum()


def _bytes_by_dtype(module) -> dict[str, int]:
    """The module's parameter bytes by dtype (trainable ones under "trainable ...")."""
    out: dict[str, int] = {}
    for p in module.parameters():
        key = f"{'trainable ' if p.requires_grad else ''}{str(p.dtype).removeprefix('torch.')}"
        out[key] = out.get(key, 0) + p.numel() * p.element_size()
    return out


def memory_case(case: MemCase, out: Path) -> None:
    """A random Llama-style 0.85B model in bf16 on the GPU, wrapped by build_engine (bf16, one process), MEM_ITERS
    forward/backward/step iterations of the case's update; max_memory_allocated per phase beside the plan's numbers
    (plan_for, vllm_fraction 0)."""
    sys.path.insert(0, str(REPO))
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from skillexp.training.forward import policy_head
    from skillexp.training.config import OptimConfig
    from skillexp.training.engine import build_engine
    from skillexp.training.memory import ModelShape

    torch.cuda.set_device(0)
    torch.manual_seed(0)
    config = LlamaConfig(**MEM_SHAPE)
    trainer = case_trainer(case)
    with torch.device("cpu" if case.lora == "qlora" else MEM_DEVICE):
        model = LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    if case.lora == "qlora":  # as the stage loads it: quantized onto the GPU from a checkpoint (training/engine.py)
        import tempfile

        from skillexp.training.engine import load_model

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            model = load_model(tmp, trainer)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    optim = OptimConfig(lr=1e-5, warmup_ratio=0.0)
    gpu_bytes = torch.cuda.get_device_properties(0).total_memory
    plan = case_plan(case, gpu_bytes)
    weights_before_engine = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    engine = build_engine(model, trainer, optim, total_steps=MEM_ITERS)
    engine.train()
    head = policy_head(engine) if case.kind == "grpo" else None
    torch.cuda.synchronize()
    after_init = torch.cuda.memory_allocated()
    init_peak = torch.cuda.max_memory_allocated()
    gen = torch.Generator().manual_seed(0)
    iters = []
    for _ in range(MEM_ITERS):
        ids = torch.randint(0, config.vocab_size, (case.batch, case.seq), generator=gen).to(MEM_DEVICE)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        loss = update_loss(engine, case, ids, head)
        engine.backward(loss)
        torch.cuda.synchronize()
        fb_peak, after_backward = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        engine.step()
        torch.cuda.synchronize()
        step_peak, after_step = torch.cuda.max_memory_allocated(), torch.cuda.memory_allocated()
        iters.append(dict(loss=float(loss), seconds=round(time.perf_counter() - t0, 4), before=before,
                          fwd_bwd_peak=fb_peak, after_backward=after_backward, step_peak=step_peak,
                          after_step=after_step))
        del loss
    measured = {"static": iters[-1]["after_backward"], "fwd_bwd": max(i["fwd_bwd_peak"] for i in iters),
                "step": max(i["step_peak"] for i in iters),
                "peak": max(init_peak, *(max(i["fwd_bwd_peak"], i["step_peak"]) for i in iters)),
                "reserved_peak": torch.cuda.max_memory_reserved()}
    planned, ratio = compare(plan, measured)
    result = {
        "case": asdict(case), "param_bytes_by_dtype": _bytes_by_dtype(engine.module), "zero_stage": case.zero,
        "gradient_checkpointing": case.ckpt, "micro_batch": case.batch,
        "seq_len": case.seq, "iterations": MEM_ITERS, "shape": MEM_SHAPE, "fused_head": head is not None,
        "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), "params_model": n_params,
        "params_plan": ModelShape.from_hf_config(model.config.to_dict()).params,
        "weights_before_engine": weights_before_engine, "after_init": after_init, "init_peak": init_peak,
        "measured": measured, "plan": planned, "gpu_bytes": gpu_bytes,
        "plan_components": {k: getattr(plan, k) for k in ("params", "grads", "optimizer", "buckets", "activations",
                                                          "logits", "step_scratch")},
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "ratio": ratio, "reserved_peak_over_required": measured["reserved_peak"] / plan.required,
        "plan_lines": plan.lines(), "iters": iters,
    }
    out.write_text(json.dumps(result, indent=1))
    print("\n".join(plan.lines()))
    print(json.dumps({k: result[k] for k in ("measured", "plan", "ratio")}, indent=1))


# --- output -----------------------------------------------------------------------------------------------------------
def table(results: list[Result]) -> str:
    rows = [f"{'step':20} {'status':6} {'time_s':>7}  detail", "-" * 104]
    rows += [f"{r.name:20} {r.status:6} {r.seconds:7.1f}  {r.detail}" for r in results]
    return "\n".join(rows)


def memory_table(results: list[Result]) -> str:
    cases = [r for r in results if r.data.get("measured")]
    if not cases:
        return ""
    head = (f"{'case':20} {'':9} {'static':>8} {'fwd/bwd':>8} {'step':>8} {'peak':>8}   (GiB; static = allocated "
            "after the backward: training state + gradients; plan = plan_for, no vLLM)")
    rows = [head, "-" * len(head)]
    width = max(20, *(len(r.name) for r in cases))
    for r in cases:
        m, p, q = r.data["measured"], r.data["plan"], r.data["ratio"]
        keys = ("static", "fwd_bwd", "step", "peak")
        rows.append(f"{r.name:{width}} {'measured':9} " + " ".join(f"{m[k] / GiB:8.2f}" for k in keys)
                    + f"   reserved peak {m['reserved_peak'] / GiB:.2f}")
        rows.append(f"{'':{width}} {'plan':9} " + " ".join(f"{p[k] / GiB:8.2f}" for k in keys)
                    + f"   required (peak + margin) {p['required'] / GiB:.2f}")
        rows.append(f"{'':{width}} {'ratio':9} " + " ".join(f"{q[k]:8.2f}" for k in keys))
    return "\n".join(rows)


def validate(steps: list[Step]) -> int:
    """Compose each CLI step's overrides with Hydra's compose API and validate them as `python -m skillexp` does at
    start-up (tests/test_configs.py's way); also GRPO's batch geometry. Builds nothing."""
    sys.path.insert(0, str(REPO))
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from skillexp.config import load_run_config, register_schemas
    from skillexp.rl.grpo import update_geometry

    register_schemas()  # as skillexp/__main__.py does before Hydra composes
    bad = 0
    for step in steps:
        if step.heavy:
            continue
        overrides = step.argv[3:]
        try:
            GlobalHydra.instance().clear()
            with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
                cfg = compose("config", overrides=overrides, return_hydra_config=True)
                HydraConfig.instance().set_config(cfg)
                run = load_run_config(cfg)
            if run.rl.name != "none":
                update_geometry(run.rl, run.trainer.micro_batch_size, run.trainer.num_processes or 1)
            print(f"  ok   {step.name}: trainer={run.trainer.name} zero={run.trainer.zero_stage} "
                  f"precision={run.trainer.precision} lora={'yes' if run.trainer.lora else 'no'} "
                  f"method={run.method.name} rl={run.rl.name} generation={run.generation.backend} "
                  f"eval={run.eval.name}")
        except Exception as e:  # noqa: BLE001 - report every step's problem
            bad += 1
            print(f"  FAIL {step.name}: {type(e).__name__}: {e}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="report folder")
    ap.add_argument("--work", default=None, help="run dirs and logs (default: /tmp/skillexp_gpu_check/<time>)")
    ap.add_argument("--jobs", type=int, default=5, help="steps at once: the memory cases one at a time beside "
                    "jobs-1 light steps (each with OMP_NUM_THREADS=3 unless set); 1: everything in a row")
    ap.add_argument("--budget-s", type=float, default=400, help="no step starts, and every running step stops, "
                    "this many seconds after the start (scripts/gpu_check.sh stops this script at budget + 60 s)")
    ap.add_argument("--step-timeout", type=int, default=150)
    ap.add_argument("--only", default="", help="comma-separated step names or prefixes (e.g. sft_zero2,mem)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    ap.add_argument("--validate", action="store_true", help="with --dry-run: compose and validate each config")
    ap.add_argument("--allow-cpu", action="store_true", help="rehearse the CLI steps without CUDA (the memory "
                    "and QLoRA steps are skipped)")
    ap.add_argument("--setup-log", default=None, help="scripts/gpu_check.sh's install log, kept in the report")
    ap.add_argument("--replan", default=None, metavar="GPU_CHECK_JSON", help="print a saved report's memory "
                    "table against the current plan (skillexp/training/memory.py); needs no GPU")
    ap.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--case-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_case:
        case = MemCase(**json.loads(args.memory_case))
        if case.expandable:  # read by torch's CUDA allocator when it starts: before memory_case imports torch
            os.environ["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
        memory_case(case, Path(args.case_out))
        return 0
    if args.replan:
        print(replan(Path(args.replan)))
        return 0
    if args.probe:
        print(json.dumps(probe()))
        return 0

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(args.work or f"/tmp/skillexp_gpu_check/{stamp}").resolve()
    only = [s for s in args.only.split(",") if s]

    def selected(steps: list[Step]) -> list[Step]:
        return [s for s in steps if not only or any(s.name == o or s.name.startswith(o) for o in only)]

    if args.dry_run:
        assumed = {"cuda": True, "cuda_devices": 1, "bitsandbytes": "ok"}
        steps = selected(plan_steps(work, assumed, args.step_timeout))
        print(f"# steps (assuming 1 GPU with bitsandbytes; 2-process steps run only with 2 GPUs), cwd {work}")
        for s in steps:
            note = f"   # SKIP here: {s.skip}" if s.skip else ""
            print(f"{s.name}: {' '.join(shlex.quote(a) for a in s.argv)}{note}")
        if args.validate:
            print("# composing and validating each CLI step's config (as python -m skillexp does at start-up)")
            return 1 if validate(steps) else 0
        return 0

    t0, deadline = time.time(), time.monotonic() + args.budget_s
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    code, text = run_process([sys.executable, str(Path(__file__).resolve()), "--probe"], work / "probe.log", 180,
                             work)
    try:
        info = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        info = {"cuda": False, "cuda_devices": 0, "probe_error": text[-2000:]}
    if not info.get("cuda") and not args.allow_cpu:
        print("no CUDA device: nothing to check")
        if "probe_error" in info:
            print(info["probe_error"])
        return 0
    out.mkdir(parents=True, exist_ok=True)
    print(f"GPU check: {info.get('gpus') or 'no GPU (--allow-cpu rehearsal)'}; torch {info.get('torch')} "
          f"(CUDA {info.get('torch_cuda')}); work dir {work}", flush=True)
    imports = Result("imports", "required modules import", "PASS" if not info.get("missing") else "FAIL",
                     detail="; ".join(f"{m} ({why})" for m, why in info.get("missing", {}).items()))
    if info.get("missing"):
        print("missing or broken imports (carry their wheels; see scripts/gpu_check.sh):")
        for module, why in info["missing"].items():
            print(f"  {module}: {why}")
    steps = selected(plan_steps(work, info, args.step_timeout))
    results = [imports, *run_all(steps, work, args.jobs, deadline, args.allow_cpu)]

    print("\n" + table(results))
    mem = memory_table(results)
    if mem:
        print("\n" + mem)
    failed = [r.name for r in results if r.status == "FAIL"]
    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)), "wall_s": round(time.time() - t0, 1),
              "env": info, "work_dir": str(work), "argv": sys.argv,
              "setup_log_tail": Path(args.setup_log).read_text(errors="replace")[-4000:]
              if args.setup_log and Path(args.setup_log).exists() else None,
              "steps": [asdict(r) for r in results],
              "counts": {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")},
              "failed": failed}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    with open(out / "gpu_check.log", "w") as log:
        for s in ["probe", *(s.name for s in steps)]:
            path = work / f"{s}.log"
            if path.exists():
                text = path.read_text(errors="replace").replace("\r", "\n")
                log.write(f"===== {s} =====\n{text[-300_000:]}\n")
    print(f"\n{report['counts']['PASS']} passed, {len(failed)} failed, {report['counts']['SKIP']} skipped "
          f"in {report['wall_s']:.0f} s; report {out / 'gpu_check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
