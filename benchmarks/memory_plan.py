"""The GPU memory plan (skillexp/training/memory.py) for the papers' GRPO runs on 80 GB GPUs: per-GPU peak, its
components, and which setups fit. A model of DeepSpeed's and vLLM's allocations, not a measurement: it needs no
GPU and no weights, and it is unverified until scripts/gpu_check.sh compares it with torch.cuda.max_memory_allocated.

Run: .venv/bin/python benchmarks/memory_plan.py
Every run: bf16, micro-batch 4 of 512 prompt + 4,096 completion tokens, gradient checkpointing, vLLM colocated on
each GPU with gpu_memory_utilization 0.4 and generation.max_num_seqs sequences at a time, asleep during the update
(generation.sleep: KV cache freed, weights dropped); the log-probs come from the last hidden state in blocks
(rl.fused_head). The shapes are hard-coded from each model's config.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skillexp.generation.config import GenerationConfig  # noqa: E402
from skillexp.training.head import HEAD_CHUNK  # noqa: E402
from skillexp.training.config import LoraConfig  # noqa: E402
from skillexp.training.memory import GiB, MARGIN_NOTE, MemoryPlan, ModelShape, plan  # noqa: E402

# from the model's config.json (hidden_size, num_hidden_layers, intermediate_size, vocab_size, num_attention_heads,
# num_key_value_heads, tie_word_embeddings; Qwen2 has q/k/v biases)
MODELS = {
    "Qwen2.5-1.5B-Instruct": ModelShape(hidden=1536, layers=28, intermediate=8960, vocab=151936, heads=12,
                                        kv_heads=2, tie_embeddings=True, qkv_bias=True),
    "Llama-3.2-3B-Instruct": ModelShape(hidden=3072, layers=28, intermediate=8192, vocab=128256, heads=24,
                                        kv_heads=8, tie_embeddings=True, head_dim=128),
    "Qwen2.5-3B": ModelShape(hidden=2048, layers=36, intermediate=11008, vocab=151936, heads=16, kv_heads=2,
                             tie_embeddings=True, qkv_bias=True),
    "Qwen2.5-7B-Instruct": ModelShape(hidden=3584, layers=28, intermediate=18944, vocab=152064, heads=28,
                                      kv_heads=4, tie_embeddings=False, qkv_bias=True),
}
GPU_BYTES = 80 * GiB  # an 80 GB A100/H100, nominal; torch reports a little less, which the margin covers
RUN = dict(precision="bf16", micro_batch_size=4, seq_len=512 + 4096, gradient_checkpointing=True, vllm_fraction=0.4,
           vllm_sleeps=True, rollout_seqs=GenerationConfig().max_num_seqs, gpu_bytes=GPU_BYTES)
ENGINES = {"ZeRO-2": dict(zero_stage=2), "ZeRO-3": dict(zero_stage=3)}
LORA = LoraConfig(r=16)  # trainer.lora's defaults: adapters on the attention and MLP projections
ONE_GPU_7B = {"ZeRO-3 + optimizer offload": dict(zero_stage=3, offload_optimizer=True),
              f"ZeRO-2 + LoRA r={LORA.r} ({'/'.join(m.removesuffix('_proj') for m in LORA.target_modules)})":
                  dict(zero_stage=2, lora=LORA)}
COLUMNS = ["model", "GPUs", "engine", "params", "grads", "optimizer", "buckets", "activations + logits",
           "step scratch", "vLLM awake", "rollout", "fwd/bwd", "step", "peak + margin", "fits"]


def setups():
    """(model, GPUs, engine name, plan) for every row of the table."""
    for model, shape in MODELS.items():
        for gpus in (1, 4, 8):
            engines = {**ENGINES, **(ONE_GPU_7B if gpus == 1 and model.startswith("Qwen2.5-7B") else {})}
            for name, engine in engines.items():
                # rl.fused_head (on by default): one block of logits rows at a time
                yield model, gpus, name, plan(shape, **RUN, **engine, world_size=gpus, logit_rows=HEAD_CHUNK)


def row(model: str, gpus: int, engine: str, p: MemoryPlan) -> list[str]:
    gib = lambda b: f"{b / GiB:.1f}"  # noqa: E731
    phases = {k: sum(v.values()) for k, v in p.phases().items()}
    return [model, str(gpus), engine, gib(p.params), gib(p.grads), gib(p.optimizer), gib(p.buckets),
            gib(p.activations + p.logits), gib(p.step_scratch), gib(p.vllm_budget), gib(phases["rollout"]),
            gib(phases["update: forward/backward"]), gib(phases["update: optimizer step"]), gib(p.required),
            "yes" if p.fits else "**no**"]


def main() -> None:
    print(f"Per GPU, GiB, on {GPU_BYTES / GiB:.0f} GiB cards; margin: {MARGIN_NOTE}.\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    rows = list(setups())
    for r in rows:
        print("| " + " | ".join(row(*r)) + " |")
    print(f"\n{sum(p.fits for *_, p in rows)} of {len(rows)} setups fit.")
    short = sorted({m for m, _, _, p in rows if not p.vllm_holds_all_seqs})
    if short:
        print(f"vLLM's budget holds fewer than {RUN['rollout_seqs']} full sequences for: {', '.join(short)}.")


if __name__ == "__main__":
    main()
