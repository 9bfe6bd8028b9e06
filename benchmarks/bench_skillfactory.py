"""Time to build a SkillFactory dataset: vLLM vs HF generation, same model, questions and decoding.

Run: .venv/bin/python benchmarks/bench_skillfactory.py [--questions 64] [--samples 1] [--max-tokens 192]
Builds `method=skillfactory` data for Countdown-3 (lenient grading: SmolLM2 rarely writes answer tags) with the
builder the pipeline uses, each backend in its own process, and prints where the time goes: sampling attempts
under the four prompt variants, scoring them, and sampling reflections on the well-formed ones.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(args) -> None:
    from benchmarks.bench_generation import MODELS
    from skillexp.generation import build_generator
    from skillexp.generation.config import GenerationConfig, SamplingConfig
    from skillexp.methods.config import MethodConfig, SkillFactoryConfig
    from skillexp.methods.skillfactory.build import build_skillfactory
    from skillexp.models import resolve_model_dir
    from skillexp.tasks import build_task
    from skillexp.tasks.scoring import ScorePool

    model = MODELS[args.model]
    task = build_task("countdown", {"num_numbers": 3, "num_train": args.questions, "num_rl": 0, "num_val": 0,
                                    "num_test": 0, "lenient": True})
    cfg = MethodConfig(name="skillfactory", samples_per_question=args.samples,
                       sampling=SamplingConfig(repetition_penalty=1.1, max_tokens=args.max_tokens),
                       skillfactory=SkillFactoryConfig(reflections_per_attempt=2,
                                                       reflection_max_tokens=args.max_tokens // 2, min_attempts=2))
    gen = build_generator(resolve_model_dir(model, ROOT / ".cache"), model,
                          GenerationConfig(backend=args.which, show_progress=False), seed=0)
    try:
        with ScorePool(workers=0) as pool:
            t0 = time.perf_counter()
            rows, stats = build_skillfactory(task, task.items("train"), gen, pool, cfg, seed=0)
            stats["total_s"] = time.perf_counter() - t0
    finally:
        gen.close()
    print("RESULT " + json.dumps(stats), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--samples", type=int, default=1, help="attempts per question and prompt variant")
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--which")
    args = ap.parse_args()
    if args.which:
        return child(args)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    results = {}
    for which in ("vllm", "hf"):
        proc = subprocess.run([sys.executable, __file__, "--which", which, "--model", args.model, "--questions",
                               str(args.questions), "--samples", str(args.samples), "--max-tokens",
                               str(args.max_tokens)], capture_output=True, text=True, cwd=ROOT, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{which} failed:\n{proc.stderr[-3000:]}")
        results[which] = json.loads(line[7:])
    p = "skillfactory/"
    print(f"model={args.model} questions={args.questions} attempts/question={4 * args.samples} "
          f"max_tokens={args.max_tokens} (reflections: 2 x {args.max_tokens // 2} tokens)\n")
    print("| backend | attempt tokens | sampling s | scoring s | reflection tokens | reflecting s | total s | "
          "tokens/s | traces |\n|---|---|---|---|---|---|---|---|---|")
    for which, r in results.items():
        tokens = r[p + "tokens_sampled"] + r[p + "tokens_reflected"]
        gen_s = r[p + "seconds_sampling"] + r[p + "seconds_reflecting"]
        print(f"| {which} | {r[p + 'tokens_sampled']:,} | {r[p + 'seconds_sampling']:.1f} | "
              f"{r[p + 'seconds_scoring']:.2f} | {r[p + 'tokens_reflected']:,} | {r[p + 'seconds_reflecting']:.1f} | "
              f"{r['total_s']:.1f} | {tokens / gen_s:,.0f} | {r[p + 'traces']} |")
    speedup = results["hf"]["total_s"] / results["vllm"]["total_s"]
    print(f"\nvLLM builds the dataset {speedup:.1f}x faster than HF generate.")


if __name__ == "__main__":
    main()
