"""How often a model gives no answer where the grader reads it, under each answer format's prompt.

Run: .venv/bin/python benchmarks/format_failures.py [--model smollm2|tiny] [--questions 16] [--k 2]
     [--max-tokens 256]

The shipped MATH questions (task=math), posed with the `original` prompt of each answer format (tasks/answer.py)
and graded strictly (no lenient fallback), plus the prompt STAT's recipe used before the two came from one
definition: "... final answer within \\boxed{} as the answer in the <answer> tags", graded on the last \\boxed{}.
Prints, per prompt, the share of samples with no answer found and the mean score.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402

from benchmarks.bench_generation import CACHE, MODELS  # noqa: E402
from skillexp.generation import SamplingParams, render_chat  # noqa: E402
from skillexp.generation.config import GenerationConfig  # noqa: E402
from skillexp.models import resolve_model_dir  # noqa: E402
from skillexp.precision import auto_dtype  # noqa: E402
from skillexp.tasks import build_task  # noqa: E402

OLD_BOXED = ('Let\'s think step by step, then give your resulting final answer within \\boxed{} as the answer in '
             'the "<answer>(your answer)</answer>" tags.')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2", choices=sorted(MODELS))
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    from skillexp.generation.vllm import VLLMGenerator

    cfg = dataclasses.replace(MODELS[args.model], dtype=auto_dtype("cpu"))
    gen = VLLMGenerator(resolve_model_dir(cfg, CACHE), cfg, GenerationConfig(backend="vllm", show_progress=False))
    tasks = {f: build_task("math", {"answer_format": f}) for f in ("tag", "boxed")}
    items = tasks["tag"].items("test")[: args.questions]
    prompts = {
        "tag: `<answer>` tags, graded on the tags": (tasks["tag"], [tasks["tag"].messages(it) for it in items]),
        "boxed: STAT's harness prompt, graded on \\boxed{}": (tasks["boxed"],
                                                             [tasks["boxed"].messages(it) for it in items]),
        "before: boxed and tags in one sentence, graded on \\boxed{}": (
            tasks["boxed"], [[{"role": "user", "content": f"{it.question}\n\n{OLD_BOXED}"}] for it in items]),
    }
    params = SamplingParams(n=args.k, temperature=0.7, top_p=0.8, top_k=20, max_tokens=args.max_tokens, seed=0)
    print(f"model={args.model} dtype={cfg.dtype} questions={len(items)} k={args.k} max_tokens={args.max_tokens}\n")
    print("| prompt | samples | no answer found | mean score | truncated |\n|---|---|---|---|---|")
    for name, (task, conversations) in prompts.items():
        out = gen.generate(render_chat(gen.tokenizer, conversations), params)
        flat = [(it, c) for it, cs in zip(items, out) for c in cs]
        none = sum(task.extract(c.text) is None for _, c in flat)
        score = sum(task.score(it, c.text) for it, c in flat)
        truncated = sum(c.truncated for _, c in flat)
        print(f"| {name} | {len(flat)} | {none / len(flat):.0%} | {score / len(flat):.3f} | "
              f"{truncated / len(flat):.0%} |")
    gen.close()


if __name__ == "__main__":
    main()
