"""A GPU memory plan: what each GPU holds for a model shape and a trainer / generation config, phase by phase, so a
run can print it at start-up and refuse a config that cannot fit before any model loads.

The training state follows DeepSpeed's own bookkeeping (0.19, read from its source and checked on CPU tensors by
tests/training/test_memory.py): per trainable parameter the model copy (2 B bf16, 4 B fp32), its gradient (same),
an fp32 master copy (4 B; ZeRO-1/2 clone one even for an fp32 model, ZeRO-0 fp32 and ZeRO-3 fp32 train the model's
own) and Adam's m and v (8 B). ZeRO-1 shards master + m + v over the ranks, ZeRO-2 also the gradients, ZeRO-3 also
the parameters; `offload_optimizer` keeps master + m + v (and, from ZeRO-2, the gradient shard) in CPU memory,
`offload_param` the ZeRO-3 parameter shards. Activations are an estimate (see `activation_bytes`), vLLM's share is
the budget it reserves. scripts/gpu_check.sh compares it with torch.cuda.max_memory_allocated on one GPU
(docs/training.md#the-gpu-check has the figures); the multi-GPU shards and vLLM's share are not measured yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skillexp.precision import concrete
from skillexp.training.config import SELECTIVE, LoraConfig, TrainerConfig

if TYPE_CHECKING:
    from skillexp.generation.config import GenerationConfig

GiB = 2**30
ADAM_BYTES = 8  # m and v, fp32
ADAM_8BIT_BYTES = 2 * (1 + 4 / 256)  # bitsandbytes' (Paged)AdamW8bit: 8-bit m and v, an fp32 scale a 256-block
MASTER_BYTES = 4  # fp32 master weights
# DeepSpeed defaults the project's ds_config leaves alone: reduce_bucket_size and stage3_prefetch_bucket_size
# (elements); ZeRO-1/2/3 allocate the whole reduce bucket to reduce over ranks (ZeRO-2 on one GPU allocates none)
REDUCE_BUCKET = 500_000_000
PREFETCH_BUCKET = 50_000_000
SUB_GROUP = 1_000_000_000  # ZeRO-3's sub_group_size: its optimizer steps this many elements at a time
# activations one decoder layer keeps, bytes per token with 16-bit activations: 8 per MLP width (the SwiGLU's gate,
# up, act(gate) and their product) + 20 per hidden width (norms with their fp32 upcasts, q/k/v before and after
# RoPE, SDPA's output: no s^2 term), fitted to an H200 measurement of a transformers Llama in bf16 with SDPA
# (42 bytes per hidden width at MLP 2.75 x hidden; Korthikanti et al. 2022 count 34 for a 4 x hidden GPT MLP). HF
# gradient checkpointing keeps one 16-bit hidden state per layer (2 per hidden width) and recomputes one layer at
# a time. Selective checkpointing (training/recompute.py) keeps the matmuls' and attention's outputs: q, SDPA's
# output, o_proj's, down_proj's and the layer's input (10 per hidden width), k and v (4 per kv width: kv heads x
# head dim), gate and up (4 per MLP width), and recomputes one layer's elementwise ops at a time. On SmolLM2 in fp32
# a forward's layers keep 11,148 floats a token and layer without checkpointing and 6,346 with selective (counted by
# benchmarks/bench_checkpointing.py): 6% under and 0.2% over these estimates (11,904 and 6,336).
ACT_PER_H, ACT_PER_I = 20, 8
CKPT_PER_H = 2
SEL_PER_H, SEL_PER_KV, SEL_PER_I = 10, 4, 4
# float32 logits [b, s, V]: the logits, their gradient, and the bf16 logits + bf16 gradient (two half copies)
LOGITS_COPIES = 3
# QLoRA NF4: 4 bits a weight + 0.127 bits of double-quantized block constants (Dettmers et al. 2023); only the
# decoder's linear layers are quantized, embeddings, lm_head and norms are in the training precision once the
# engine is built (peft's k-bit preparation casts them to fp32, DeepSpeed's bf16 engine back)
NF4_BYTES = (4 + 0.127) / 8
# asleep (generation.sleep: level 2, KV cache freed and weights dropped) vLLM keeps allocator pools and buffers
VLLM_SLEEP_RESIDUE = 1 * GiB
# of the peak: allocator fragmentation and what the plan leaves out (on an H200 the plan's peak was 1% below to 20%
# above torch.cuda.max_memory_allocated's; the caching allocator's reserved peak 7-28% above the allocated one)
SAFETY_FRACTION = 0.10
SAFETY_BYTES = int(1.5 * GiB)  # CUDA context(s), NCCL buffers, cuBLAS workspaces
MARGIN_NOTE = f"{SAFETY_FRACTION:.0%} of the peak + {SAFETY_BYTES / GiB:.1f} GiB: CUDA context, fragmentation"
CHECKPOINTING = {False: "off", SELECTIVE: "selective", True: "full"}  # the plan's words for each setting
CHECKPOINTING_ORDER = [False, SELECTIVE, True]  # from the most activation memory to the least
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
KNOWN_TYPES = ("llama", "qwen2", "mistral")


@dataclass(frozen=True)
class ModelShape:
    """A Llama/Qwen2-style decoder: RMSNorms, GQA attention (optional biases), SwiGLU MLP, optional tied lm_head."""

    hidden: int
    layers: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tie_embeddings: bool
    head_dim: int = 0  # 0: hidden // heads
    qkv_bias: bool = False  # Qwen2: q/k/v biases (o_proj has none)
    o_bias: bool = False  # Llama attention_bias: q/k/v and o biases
    mlp_bias: bool = False

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> ModelShape:
        """From a config.json's keys; Qwen2 always has q/k/v biases, Llama's `attention_bias` adds all four."""
        kind = cfg.get("model_type", "llama")
        if kind not in KNOWN_TYPES:
            raise ValueError(f"memory plan: model_type {kind!r} is not a Llama/Qwen2-style decoder ({KNOWN_TYPES}).")
        bias = bool(cfg.get("attention_bias", False))
        return cls(hidden=cfg["hidden_size"], layers=cfg["num_hidden_layers"], intermediate=cfg["intermediate_size"],
                   vocab=cfg["vocab_size"], heads=cfg["num_attention_heads"],
                   kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                   tie_embeddings=bool(cfg.get("tie_word_embeddings", False)), head_dim=cfg.get("head_dim") or 0,
                   qkv_bias=bias or kind == "qwen2", o_bias=bias, mlp_bias=bool(cfg.get("mlp_bias", False)))

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    def linear_dims(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer, by peft module name."""
        h, q, kv, i = self.hidden, self.heads * self.dim, self.kv_heads * self.dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def linear_params(self) -> int:
        """Weights of every decoder layer's linear layers (what QLoRA quantizes)."""
        return self.layers * sum(a * b for a, b in self.linear_dims().values())

    @property
    def params(self) -> int:
        """Exactly `sum(p.numel() for p in model.parameters())` of the transformers model."""
        dims = self.linear_dims()
        bias = (sum(dims[k][1] for k in ("q_proj", "k_proj", "v_proj")) * self.qkv_bias
                + self.hidden * self.o_bias + (2 * self.intermediate + self.hidden) * self.mlp_bias)
        embeddings = self.vocab * self.hidden * (1 if self.tie_embeddings else 2)
        return self.linear_params + self.layers * (bias + 2 * self.hidden) + embeddings + self.hidden

    def kv_bytes_per_token(self, dtype_bytes: int = 2, tp: int = 1) -> int:
        """vLLM's KV cache on one GPU of an engine over `tp`: K and V for every layer's kv heads (split over the
        GPUs, each keeping at least one: vLLM replicates kv heads when there are fewer than GPUs)."""
        return 2 * self.layers * -(-self.kv_heads // tp) * self.dim * dtype_bytes


def lora_params(shape: ModelShape, lora: LoraConfig) -> int:
    """LoRA adds A (r x in) and B (out x r) to each targeted linear layer of every decoder layer."""
    dims = shape.linear_dims()
    targets = LINEARS if list(lora.target_modules) in (["all-linear"], ["all_linear"]) else lora.target_modules
    unknown = sorted(set(targets) - set(dims))
    if unknown:
        raise ValueError(f"trainer.lora.target_modules names {unknown}; a Llama/Qwen2 layer has {list(LINEARS)}.")
    return shape.layers * sum(lora.r * sum(dims[t]) for t in set(targets))


def weight_bytes(shape: ModelShape, dtype_bytes: float, quantized_4bit: bool) -> int:
    """The whole model's weights: in `dtype_bytes`, or NF4 linear layers and `dtype_bytes` for the rest."""
    if not quantized_4bit:
        return int(shape.params * dtype_bytes)
    return int(shape.linear_params * NF4_BYTES + (shape.params - shape.linear_params) * dtype_bytes)


def activation_bytes(shape: ModelShape, micro_batch_size: int, seq_len: int, gradient_checkpointing: bool | str,
                     dtype_bytes: int) -> int:
    """Activations a forward keeps for the backward, all layers (the logits are `logits_bytes`), under
    `trainer.gradient_checkpointing` (False, True or "selective"): with checkpointing, plus one layer's whole set
    while the backward runs it again."""
    tokens = seq_len * micro_batch_size * dtype_bytes / 2
    layer = (ACT_PER_H * shape.hidden + ACT_PER_I * shape.intermediate) * tokens
    if gradient_checkpointing == SELECTIVE:
        kept = SEL_PER_H * shape.hidden + SEL_PER_KV * shape.kv_heads * shape.dim + SEL_PER_I * shape.intermediate
        return int(shape.layers * kept * tokens + layer)
    if gradient_checkpointing:
        return int(shape.layers * CKPT_PER_H * shape.hidden * tokens + layer)
    return int(shape.layers * layer)


def logits_bytes(shape: ModelShape, micro_batch_size: int, seq_len: int, logit_rows: int | None = None) -> int:
    """The logits of every position at once, or with `logit_rows` (the fused head in blocks, training/head.py: SFT's and
    GRPO's) one block of that many positions at a time plus a float32 copy of the head's gradient."""
    if logit_rows is None:
        return LOGITS_COPIES * micro_batch_size * seq_len * shape.vocab * 4
    block = min(logit_rows, micro_batch_size * seq_len)
    return LOGITS_COPIES * block * shape.vocab * 4 + shape.vocab * shape.hidden * 4


def training_state(shape: ModelShape, *, precision: str, zero_stage: int, offload_optimizer: bool,
                   offload_param: bool, lora: LoraConfig | None, world_size: int,
                   quantized_4bit: bool) -> dict[str, int]:
    """Per-GPU bytes of what DeepSpeed keeps between steps, plus what one optimizer step adds for a moment."""
    pb = {"bf16": 2, "fp16": 2, "fp32": 4}[precision]
    half = pb == 2  # bf16 or fp16: 16-bit weights with fp32 master copies
    n = world_size
    trainable = lora_params(shape, lora) if lora else shape.params
    base = weight_bytes(shape, pb, quantized_4bit) if lora else 0  # frozen: no gradients, no optimizer
    params = (base + trainable * pb) / (n if zero_stage == 3 else 1)
    opt_shard = trainable / (n if zero_stage >= 1 else 1)
    master = MASTER_BYTES if half or zero_stage in (1, 2) else 0
    adam = ADAM_8BIT_BYTES if lora and lora.optimizer == "paged_adamw_8bit" else ADAM_BYTES
    grads = trainable * pb / (n if zero_stage >= 2 else 1)
    if offload_optimizer and zero_stage >= 2:
        grads = 0  # the gradient shard lives next to the optimizer, in CPU memory
    # ZeRO-0's all-reduce flattens gradients into buckets after the backward, smaller than the step's scratch
    buckets = REDUCE_BUCKET * pb if zero_stage else 0
    if zero_stage == 3:  # the largest module gathered whole, plus the prefetch bucket
        buckets += (max(shape.vocab * shape.hidden, max(a * b for a, b in shape.linear_dims().values()))
                    + PREFETCH_BUCKET) * pb
    # a step converts the gradient shard to fp32 (except ZeRO-0 fp32); ZeRO-1/2/3 first flatten it, and in bf16
    # that flat 16-bit copy lives beside the fp32 one (6 bytes a parameter, measured on an H200 by
    # scripts/gpu_check.py); ZeRO-3 steps one sub-group at a time. The fused AdamW makes no shard-sized temporary
    copies = MASTER_BYTES * (half or zero_stage >= 1) + pb * (half and zero_stage >= 1)
    scratch = copies * (min(opt_shard, SUB_GROUP) if zero_stage == 3 else opt_shard)
    return {"params": int(0 if offload_param else params), "grads": int(grads),
            "optimizer": int(0 if offload_optimizer else (master + adam) * opt_shard),
            "buckets": int(buckets), "step_scratch": int(0 if offload_optimizer else scratch)}


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU by component; the phases say which components are resident together."""

    shape: ModelShape
    settings: dict[str, Any]  # plan()'s keyword arguments, to name the settings and re-plan alternatives
    gpu_bytes: int
    params: int  # the training copy: trainable, and a LoRA run's frozen base
    grads: int
    optimizer: int  # fp32 master weights + Adam m and v (8-bit with trainer.lora.optimizer=paged_adamw_8bit)
    buckets: int  # DeepSpeed's reduce bucket; ZeRO-3's gathered module and prefetch bucket
    reference: int  # the frozen KL reference copy
    activations: int
    logits: int
    step_scratch: int  # the fp32 gradient shard, during optimizer.step only
    vllm_budget: int  # gpu_memory_utilization x the card, reserved while vLLM is awake
    vllm_asleep: int  # what vLLM keeps during the update
    vllm_weights: int
    vllm_kv_per_seq: int  # one full sequence's KV cache
    rollout_seqs: int

    @property
    def static(self) -> int:
        return self.params + self.grads + self.optimizer + self.buckets + self.reference

    def phases(self) -> dict[str, dict[str, int]]:
        """Components resident together in each phase of a GRPO step (an SFT step is the two update phases)."""
        static = {"params": self.params, "grads": self.grads, "optimizer": self.optimizer,
                  "buckets": self.buckets, "reference": self.reference}
        return {"rollout": {**static, "vllm (awake)": self.vllm_budget},
                "update: forward/backward": {**static, "activations": self.activations, "logits": self.logits,
                                             "vllm (asleep)": self.vllm_asleep},
                "update: optimizer step": {**static, "step scratch": self.step_scratch,
                                           "vllm (asleep)": self.vllm_asleep}}

    @property
    def peak_phase(self) -> str:
        return max(self.phases().items(), key=lambda kv: sum(kv[1].values()))[0]

    @property
    def peak(self) -> int:
        return sum(self.phases()[self.peak_phase].values())

    @property
    def margin(self) -> int:
        return int(SAFETY_FRACTION * self.peak) + SAFETY_BYTES

    @property
    def required(self) -> int:
        return self.peak + self.margin

    @property
    def vllm_min(self) -> int:
        """vLLM refuses to start without its weights and one full sequence's KV cache."""
        return self.vllm_weights + self.vllm_kv_per_seq if self.vllm_budget else 0

    @property
    def vllm_holds_all_seqs(self) -> bool:
        """Does the budget hold KV for `rollout_seqs` full sequences? If not vLLM runs fewer at once (slower)."""
        return not self.vllm_budget or self.vllm_weights + self.rollout_seqs * self.vllm_kv_per_seq <= self.vllm_budget

    @property
    def fits(self) -> bool:
        return self.required <= self.gpu_bytes and self.vllm_min <= self.vllm_budget

    def lines(self) -> list[str]:
        """A table for the console: GiB per component and phase, the peak with its margin against the card."""
        s = self.settings
        lora = s["lora"]
        out = [f"GPU memory plan, per GPU: {self.shape.params / 1e9:.2f}B params, {s['precision']}, "
               f"ZeRO-{s['zero_stage']}{' +opt offload' if s['offload_optimizer'] else ''}"
               f"{' +param offload' if s['offload_param'] else ''}{f', LoRA r={lora.r}' if lora else ''}"
               f"{', 4-bit base' if s['quantized_4bit'] else ''}, {s['world_size']} GPU(s), micro-batch "
               f"{s['micro_batch_size']} x {s['seq_len']} tokens, checkpointing "
               f"{CHECKPOINTING[s['gradient_checkpointing']]}"]
        for phase, parts in self.phases().items():
            out.append(f"  {phase + ':':<28}{sum(parts.values()) / GiB:8.2f} GiB")
            out += [f"    {name:<26}{b / GiB:8.2f}" for name, b in parts.items() if b]
        out.append(f"  peak ({self.peak_phase}) {self.peak / GiB:.2f} + margin {self.margin / GiB:.2f} "
                   f"[{MARGIN_NOTE}] = {self.required / GiB:.2f} of {self.gpu_bytes / GiB:.2f} GiB: "
                   f"{'fits' if self.fits else 'DOES NOT FIT'}")
        if self.vllm_budget:
            tp = f" (a shard of an engine over {s['vllm_tp']} GPUs)" if s["vllm_tp"] > 1 else ""
            out.append(f"  vLLM budget {self.vllm_budget / GiB:.2f} GiB{tp}: weights {self.vllm_weights / GiB:.2f} "
                       f"+ KV {self.vllm_kv_per_seq / GiB:.3f} a sequence; holds {self.rollout_seqs} full sequences: "
                       f"{'yes' if self.vllm_holds_all_seqs else 'no (vLLM will run fewer at once)'}")
        return out

    def check(self) -> None:
        """Raise ValueError naming the settings to change when the plan does not fit."""
        if self.fits:
            return
        problems = []
        if self.vllm_min > self.vllm_budget:
            n, tp = self.settings["world_size"], self.settings["vllm_tp"]
            spread = next((f", or generation.tensor_parallel_size={k} (its weights and KV cache over {k} GPUs)"
                           for k in (2, 4, 8) if tp < k <= n and n % k == 0
                           and replace_settings(self, vllm_tp=k).vllm_min <= self.vllm_budget), "")
            problems.append(f"vLLM's budget (generation.gpu_memory_utilization={self.settings['vllm_fraction']}: "
                            f"{self.vllm_budget / GiB:.1f} GiB) is below its weights + one sequence's KV cache "
                            f"({self.vllm_min / GiB:.1f} GiB): raise generation.gpu_memory_utilization or lower "
                            f"model.max_model_len{spread}")
        if self.required > self.gpu_bytes:
            top = max(self.phases()[self.peak_phase].items(), key=lambda kv: kv[1])
            problems.append(f"the '{self.peak_phase}' phase needs {self.required / GiB:.1f} GiB with the margin, "
                            f"the GPU has {self.gpu_bytes / GiB:.1f} GiB; largest: {top[0]} {top[1] / GiB:.1f} GiB. "
                            "Change one of:\n  - " + "\n  - ".join(remedies(self) or ["a larger GPU"]))
        raise ValueError("memory plan: " + "; ".join(problems))


def plan(shape: ModelShape, *, precision: str, zero_stage: int, offload_optimizer: bool = False,
         offload_param: bool = False, lora: LoraConfig | None = None, world_size: int = 1, micro_batch_size: int = 1,
         seq_len: int, gradient_checkpointing: bool | str = False, vllm_fraction: float = 0.0, rollout_seqs: int = 64,
         vllm_sleeps: bool = False, gpu_bytes: int, kl_reference: bool = False,
         quantized_4bit: bool = False, logit_rows: int | None = None, vllm_tp: int = 1) -> MemoryPlan:
    """The per-GPU memory plan of a training run with (vllm_fraction > 0) vLLM colocated on each GPU, its engine
    over `vllm_tp` GPUs (a shard of the weights and KV cache on each). A LoRA config with `quantize: nf4` implies
    `quantized_4bit`; `logit_rows`: see `logits_bytes`."""
    quantized_4bit = quantized_4bit or bool(lora and lora.quantize)
    _validate(zero_stage, offload_optimizer, offload_param, lora, quantized_4bit, vllm_fraction, world_size, vllm_tp)
    settings = dict(precision=precision, zero_stage=zero_stage, offload_optimizer=offload_optimizer,
                    offload_param=offload_param, lora=lora, world_size=world_size, micro_batch_size=micro_batch_size,
                    seq_len=seq_len, gradient_checkpointing=gradient_checkpointing, vllm_fraction=vllm_fraction,
                    rollout_seqs=rollout_seqs, vllm_sleeps=vllm_sleeps, gpu_bytes=gpu_bytes,
                    kl_reference=kl_reference, quantized_4bit=quantized_4bit, logit_rows=logit_rows,
                    vllm_tp=vllm_tp)
    pb = {"bf16": 2, "fp16": 2, "fp32": 4}[precision]
    state = training_state(shape, precision=precision, zero_stage=zero_stage, offload_optimizer=offload_optimizer,
                           offload_param=offload_param, lora=lora, world_size=world_size,
                           quantized_4bit=quantized_4bit)
    budget = int(vllm_fraction * gpu_bytes)
    return MemoryPlan(
        shape=shape, settings=settings, gpu_bytes=gpu_bytes, **state,
        reference=weight_bytes(shape, pb, quantized_4bit) if kl_reference else 0,
        activations=activation_bytes(shape, micro_batch_size, seq_len, gradient_checkpointing, pb),
        logits=logits_bytes(shape, micro_batch_size, seq_len, logit_rows), vllm_budget=budget,
        vllm_asleep=min(budget, VLLM_SLEEP_RESIDUE) if vllm_sleeps else budget,
        vllm_weights=weight_bytes(shape, 2, quantized_4bit) // vllm_tp if budget else 0,
        vllm_kv_per_seq=shape.kv_bytes_per_token(tp=vllm_tp) * seq_len if budget else 0, rollout_seqs=rollout_seqs)


def plan_for(shape: ModelShape, trainer: TrainerConfig, *, seq_len: int, world_size: int, gpu_bytes: int,
             generation: GenerationConfig | None = None, kl_reference: bool = False,
             logit_rows: int | None = None) -> MemoryPlan:
    """`plan` from the project's configs: `trainer`, and `generation` when vLLM samples on the same GPU (asleep
    during updates with `generation.sleep`); `seq_len` is the longest prompt + completion (GRPO) or
    method.sft.max_length (SFT); `kl_reference`: rl.kl_coef > 0; `logit_rows`: the fused head's block
    (training/head.py)."""
    vllm = generation is not None and generation.backend == "vllm"
    return plan(shape, precision=concrete(trainer.precision), zero_stage=trainer.zero_stage,
                offload_optimizer=trainer.offload_optimizer, offload_param=trainer.offload_param, lora=trainer.lora,
                world_size=world_size, micro_batch_size=trainer.micro_batch_size, seq_len=seq_len,
                gradient_checkpointing=trainer.gradient_checkpointing,
                vllm_fraction=generation.gpu_memory_utilization if vllm else 0.0,
                rollout_seqs=generation.max_num_seqs if vllm else 0, vllm_sleeps=vllm and generation.sleep,
                gpu_bytes=gpu_bytes, kl_reference=kl_reference, logit_rows=logit_rows,
                vllm_tp=generation.tensor_parallel_size if vllm else 1)


def _validate(zero_stage: int, offload_optimizer: bool, offload_param: bool, lora: LoraConfig | None,
              quantized_4bit: bool, vllm_fraction: float, world_size: int, vllm_tp: int) -> None:
    """The combinations the engine (training/engine.py, TrainerConfig) refuses, refused here too."""
    if offload_param and zero_stage != 3:
        raise ValueError("trainer.offload_param needs trainer.zero_stage=3.")
    if offload_optimizer and zero_stage == 0:
        raise ValueError("trainer.offload_optimizer needs trainer.zero_stage >= 1.")
    if lora is not None and zero_stage == 3:
        raise ValueError("trainer.lora runs on trainer.zero_stage 0, 1 or 2.")
    if quantized_4bit and lora is None:
        raise ValueError("4-bit base weights (QLoRA) need trainer.lora: a quantized base cannot be trained.")
    if not 0 <= vllm_fraction < 1 or world_size < 1:
        raise ValueError(f"memory plan: vllm_fraction must lie in [0, 1) and world_size be >= 1, got "
                         f"{vllm_fraction}, {world_size}.")
    if vllm_tp < 1 or (world_size > 1 and world_size % vllm_tp):
        raise ValueError(f"generation.tensor_parallel_size={vllm_tp} does not divide the {world_size} ranks.")


def _alternatives(p: MemoryPlan) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Setting changes that shrink each component: (what to tell the user, plan() keywords to re-plan with)."""
    s = p.settings
    zs, n, alt = s["zero_stage"], s["world_size"], {}
    stage = 2 if s["lora"] else 3
    m = next((m for m in (2 * n, 4 * n, 8 * n) if replace_settings(p, world_size=m, zero_stage=stage).fits), 0)
    more = [(f"more GPUs: trainer.num_processes={m}" + (f" with trainer.zero_stage={stage}" if zs < stage else ""),
             {"world_size": m, "zero_stage": stage})] * bool(m)
    zero = [(f"raise trainer.zero_stage to {k}", {"zero_stage": k}) for k in (1, 2, 3) if k > zs and n > 1]
    offload = [] if s["offload_optimizer"] else [(
        "trainer.offload_optimizer=true" + (" (with trainer.zero_stage=1)" if zs == 0 else ""),
        {"offload_optimizer": True, "zero_stage": max(1, zs)})]
    lora = [] if s["lora"] else [("trainer.lora (adapters only; trainer.zero_stage <= 2)",
                                  {"lora": LoraConfig(), "zero_stage": min(zs, 2), "offload_param": False})]
    qlora = [] if s["quantized_4bit"] else [("trainer=qlora (4-bit base weights, LoRA adapters, ZeRO-0)", {
        "lora": LoraConfig(quantize="nf4", optimizer="paged_adamw_8bit"), "zero_stage": 0,
        "offload_optimizer": False, "offload_param": False})]
    alt["optimizer"] = zero + offload + lora + more
    alt["grads"] = [z for z in zero if z[1]["zero_stage"] >= 2] + offload + lora + more
    alt["params"] = [z for z in zero if z[1]["zero_stage"] == 3] + more + qlora + (
        [("trainer.offload_param=true", {"offload_param": True})] if zs == 3 and not s["offload_param"] else [])
    act = [(f"trainer.gradient_checkpointing={mode}", {"gradient_checkpointing": value})
           for mode, value in (("selective", SELECTIVE), ("true", True))
           if CHECKPOINTING_ORDER.index(value) > CHECKPOINTING_ORDER.index(s["gradient_checkpointing"])]
    act += [(f"lower trainer.micro_batch_size to {k}", {"micro_batch_size": k})
            for k in (s["micro_batch_size"] // 2, 1) if 0 < k < s["micro_batch_size"]]
    alt["activations"] = alt["logits"] = act
    # the largest gpu_memory_utilization (in hundredths) that fits
    f = next((k / 100 for k in range(round(100 * s["vllm_fraction"]) - 1, 0, -1)
              if replace_settings(p, vllm_fraction=k / 100).fits), 0)
    alt["vllm (awake)"] = [(f"lower generation.gpu_memory_utilization to {f:.2f}", {"vllm_fraction": f})] * bool(f)
    alt["vllm (asleep)"] = alt["vllm (awake)"] + ([] if s["vllm_sleeps"] else [
        ("generation.sleep=true (vLLM frees its memory during the update)", {"vllm_sleeps": True})])
    alt["reference"] = [("rl.kl_coef=0 (no reference copy)", {"kl_reference": False})]
    alt["buckets"] = alt["step scratch"] = offload
    return alt


def remedies(p: MemoryPlan, limit: int = 6) -> list[str]:
    """Changes that fit, or close at least a tenth of the gap, for the largest components of the peak phase first;
    each re-planned, with what it would need and whether that fits."""
    alternatives, gap = _alternatives(p), p.required - p.gpu_bytes
    parts = sorted(p.phases()[p.peak_phase].items(), key=lambda kv: -kv[1])
    found: dict[str, MemoryPlan] = {}
    for name, _ in parts:
        for text, change in alternatives.get(name, []):
            try:
                other = replace_settings(p, **change)
            except ValueError:
                continue
            if text not in found and (other.fits or p.required - other.required >= gap / 10):
                found[text] = other
    ranked = sorted(found.items(), key=lambda kv: not kv[1].fits)  # stable: the largest component's first
    return [f"{text} (needs {o.required / GiB:.1f} GiB{', fits' if o.fits else ''})" for text, o in ranked[:limit]]


def replace_settings(p: MemoryPlan, **change: Any) -> MemoryPlan:
    """The same run with some of plan()'s keywords changed."""
    return plan(p.shape, **{**p.settings, **change})

