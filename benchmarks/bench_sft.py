"""SFT throughput and peak memory: our DeepSpeed SFT loop vs TRL's SFTTrainer, same data, batch, length, precision.

Run: .venv/bin/python benchmarks/bench_sft.py [--model smollm2|tiny] [--steps 6] [--batch 8]
                                             [--precision auto|fp32|bf16] [--batches padded,packed]
                                             [--only ours,ours-logits,trl] [--checkpointing false|selective|true]
Each trainer runs in its own process (so peak RSS is its own); the first step is a warm-up and not timed. All
train on the same chat rows (Countdown-3 reference answers under the four SkillFactory prompts), unpacked (batch =
sequences) and packed (batch = rows of up to 1024 tokens: ours best-fit-decreasing with a block-diagonal mask, TRL's
`bfd` padding-free packing). tokens/s counts non-padding tokens; "of bound" divides it by what this machine's matmul
peak (a 2048³ matmul in the run's dtype, timed first) allows at 6·N FLOPs a token. `ours-logits` is our loop with
the loss from the full logits (`sft.fused_head=false`) instead of the last hidden state at the target tokens.
`auto` is the precision skillexp picks on this CPU (bf16 where it is native, else fp32); TRL trains in the same one
(its `bf16` flag). Activation checkpointing: ours as `trainer=cpu` sets it (selective: the elementwise ops run again
in the backward) unless `--checkpointing` says otherwise; TRL with its default, full checkpointing.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


LABELS = {"ours": "skillexp (DeepSpeed ZeRO-0)",
          "ours-logits": "skillexp, loss from the logits (`sft.fused_head=false`)",
          "trl": "TRL SFTTrainer (its default: full gradient checkpointing)"}
CHECKPOINTING = {False: "no checkpointing", True: "full checkpointing", "selective": "selective checkpointing"}


def make_data(path: Path, n: int) -> None:
    from skillexp.tasks import build_task

    task = build_task("countdown", {"num_numbers": 3, "num_train": n, "num_rl": 0, "num_val": 0, "num_test": 0})
    variants = ("original", "plan_and_execute", "alternatively", "rephrase")
    rows = [{"messages": task.messages(it, variants[i % 4]) + [
        {"role": "assistant", "content": f"Let me work it out. {task.reference_solution(it)}"}]}
        for i, it in enumerate(task.items("train"))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def matmul_params(name: str) -> int:
    """The parameters a token's forward multiplies by (every linear layer's weights, the output head included, the
    input embedding, a lookup, not): the N of 6·N FLOPs a trained token. The model is built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir(name)))
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def model_dir(name: str) -> Path:
    from benchmarks.bench_generation import MODELS
    from skillexp.models import resolve_model_dir

    return resolve_model_dir(MODELS[name], ROOT / ".cache")


def run_ours(args, data: Path, out: Path) -> dict:
    from benchmarks.bench_generation import MODELS
    from skillexp.tracking import LoggerConfig
    from skillexp.tracking import Tracker
    from skillexp.training.config import OptimConfig, SFTConfig, TrainerConfig
    from skillexp.training.sft import run_sft
    from skillexp.utils.io import read_jsonl

    trainer = TrainerConfig(name="bench", precision=args.precision, micro_batch_size=args.batch, grad_accum=1,
                            save_every_steps=10**6, gradient_checkpointing=args.checkpointing)
    tracker = Tracker(LoggerConfig(backend="none"), out, {})
    run_sft(data, model_dir(args.model), MODELS[args.model], trainer,
            SFTConfig(max_steps=args.steps, max_length=1024, val_fraction=0.0, packing=args.packing,
                      fused_head=args.which != "ours-logits", optim=OptimConfig(lr=1e-5, warmup_ratio=0.0)),
            out / "sft", tracker, seed=0)
    tracker.finish()
    rates = [r["sft/tokens_per_s"] for r in read_jsonl(out / "metrics.jsonl") if "sft/tokens_per_s" in r][1:]
    return {"tokens_per_s": sum(rates) / len(rates)}


def run_trl(args, data: Path, out: Path) -> dict:
    import datasets
    from transformers import AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from benchmarks.bench_generation import MODELS
    from skillexp.models import load_causal_lm

    cfg = MODELS[args.model]
    tok = AutoTokenizer.from_pretrained(model_dir(args.model))
    model = load_causal_lm(model_dir(args.model), cfg).float().train()
    ds = datasets.load_dataset("json", data_files=str(data), split="train")
    times, tokens = [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    trainer = SFTTrainer(model=model, processing_class=tok, train_dataset=ds, callbacks=[Clock()], args=SFTConfig(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch, learning_rate=1e-5,
        assistant_only_loss=False, completion_only_loss=None, packing=args.packing, max_length=1024, use_cpu=True,
        gradient_checkpointing=True,  # TRL's default, pinned
        bf16=args.precision == "bf16", report_to="none", save_strategy="no", logging_steps=1,
        dataloader_drop_last=True))
    loader = trainer.get_train_dataloader()
    for i, batch in enumerate(loader):
        if i >= args.steps:
            break
        # padding-free (packed) batches carry no attention mask and no padding
        tokens.append(int(batch["attention_mask"].sum()) if "attention_mask" in batch else batch["input_ids"].numel())
    trainer.train()
    return {"tokens_per_s": sum(tokens[1:]) / sum(times[1:])}


def _checkpointing(value: str) -> bool | str:
    modes = {"false": False, "true": True, "selective": "selective"}
    if value.lower() not in modes:
        raise argparse.ArgumentTypeError(f"{value!r}: choose one of {', '.join(modes)}")
    return modes[value.lower()]


def cpu_preset_checkpointing() -> bool | str:
    """trainer=cpu's gradient_checkpointing (what `make run` trains with)."""
    import yaml

    return yaml.safe_load((ROOT / "conf/trainer/cpu.yaml").read_text()).get("gradient_checkpointing", False)


def child(args) -> None:
    out = Path(args.out)
    result = (run_trl if args.which == "trl" else run_ours)(args, Path(args.data), out)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--batches", default="padded,packed", help="which batch layouts to compare (comma-separated)")
    ap.add_argument("--only", default="ours,trl", help="which trainers (ours, ours-logits, trl; comma-separated)")
    ap.add_argument("--checkpointing", type=_checkpointing, default=cpu_preset_checkpointing(),
                    help="our trainer.gradient_checkpointing (false, true, selective); default: trainer=cpu's")
    ap.add_argument("--which")
    ap.add_argument("--data")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.which:
        return child(args)
    from benchmarks.machine import bound_tokens_per_s, header, matmul_peak_gflops, resolve

    print(header(args.precision))
    args.precision = resolve(args.precision)
    peak = matmul_peak_gflops(args.precision)
    params = matmul_params(args.model)
    bound = bound_tokens_per_s(peak, params)
    print(f"matmul peak {peak:.1f} GFLOP/s in {args.precision}: {bound:,.0f} trained tokens/s for {params / 1e6:.0f}M "
          "parameters at 6·N FLOPs a token\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sft-"))
    make_data(tmp / "data.jsonl", n=args.batch * (args.steps + 2) * 8)  # enough rows to fill packed batches
    rows = []
    layouts = [b == "packed" for b in ("padded", "packed") if b in args.batches.split(",")]
    trainers = args.only.split(",")
    if not set(trainers) <= set(LABELS) or "trl" not in trainers:
        raise SystemExit(f"--only takes trl and any of {', '.join(LABELS)} (comma-separated), got {args.only!r}.")
    for which, packing in [(w, p) for p in layouts for w in trainers]:
        flags = ["--packing"] if packing else []
        flags += ["--checkpointing", str(args.checkpointing)]
        proc = subprocess.run([sys.executable, __file__, "--which", which, "--data", str(tmp / "data.jsonl"),
                               "--out", str(tmp / f"{which}{int(packing)}"), "--model", args.model, "--steps",
                               str(args.steps), "--batch", str(args.batch), "--precision", args.precision, *flags],
                              capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{which} failed:\n{proc.stderr[-3000:]}")
        rows.append((which, packing, json.loads(line[7:])))
    print(f"model={args.model} batch={args.batch} steps={args.steps} precision={args.precision}\n")
    print("| trainer | batches | tokens/s | of bound | peak RSS GB |\n|---|---|---|---|---|")
    for which, packing, r in rows:
        label = LABELS[which] if which == "trl" else f"{LABELS[which]}, {CHECKPOINTING[args.checkpointing]}"
        print(f"| {label} | {'packed' if packing else 'padded'} | {r['tokens_per_s']:,.0f} | "
              f"{r['tokens_per_s'] / bound:.0%} | {r['peak_rss_gb']:.2f} |")
    print()
    for which, packing, ours in rows:
        trl = next(r for w, p, r in rows if w == "trl" and p == packing)
        if which != "trl":
            print(f"{'packed' if packing else 'padded'}: {which} {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x "
                  f"TRL's tokens/s at {ours['peak_rss_gb'] / trl['peak_rss_gb']:.2f}x its peak memory.")


if __name__ == "__main__":
    main()
