"""A tiny random-init Qwen2-style model with a locally trained BPE tokenizer, for tests and smoke runs.

It cannot answer anything, but it runs every real code path (chat template, HF generate, vLLM, DeepSpeed) in
seconds. Embeddings are untied because vLLM's CPU backend ignores weight reloads of a tied `lm_head`.
The tokenizer uses Qwen2's exact normalizer and pre-tokenizer: transformers loads any `model_type: qwen2`
directory as `Qwen2Tokenizer`, which rebuilds those parts, so anything else would tokenize differently on reload.
"""
from __future__ import annotations

import random
from pathlib import Path

import torch

RECIPE_VERSION = 1  # bump when anything below changes: the cache key includes it
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
QWEN_PRETOKENIZE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ARCH = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=2048)
WORDS = ("Using the numbers create an equation that equals You can use basic arithmetic operations and each number "
         "can only be used once Let's think step by step What is the answer Give your final in tags Alternatively "
         "First I'll try to understand problem better by writing out a plan Rewritten Question system user "
         "assistant Correct Incorrect verdict reflect sample think answer so therefore").split()


def _corpus(rng: random.Random) -> list[str]:
    """Arithmetic chatter in the tasks' answer formats; results computed directly, never by eval."""
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    lines = []
    for _ in range(6000):
        a, b = rng.randint(0, 999), rng.randint(0, 99)
        op = rng.choice("+-*")
        words = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
        tag = rng.choice(["answer", "think", "sample", "reflect", "verdict"])
        lines.append(f"{words} ({a} {op} {b}) / 2 = {ops[op](a, b)}. <{tag}>{ops[op](a, b)}</{tag}>\n")
    return lines + ["system\nuser\nassistant\n"] * 200


def build_tiny(out_dir: Path, seed: int = 0) -> None:
    """Write a tiny model + tokenizer directory; the same seed gives the same bytes."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    rng = random.Random(seed)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(rng), trainers.BpeTrainer(
        vocab_size=1024, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token=None, model_max_length=ARCH["max_position_embeddings"], padding_side="left")
    hf_tok.chat_template = CHATML

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(hf_tok), tie_word_embeddings=False, bos_token_id=hf_tok.bos_token_id,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id, **ARCH)
    model = AutoModelForCausalLM.from_config(cfg)
    for k in ("pad", "eos", "bos"):
        setattr(model.generation_config, f"{k}_token_id", getattr(hf_tok, f"{k}_token_id"))
    model.save_pretrained(out_dir)
    hf_tok.save_pretrained(out_dir)
