"""A tiny random-init Qwen2-style model with a locally trained BPE tokenizer, for tests and smoke runs.

It cannot answer anything, but it runs every real code path (chat template, HF generate, vLLM, DeepSpeed) in
seconds. Embeddings are untied because vLLM's CPU backend ignores weight reloads of a tied `lm_head`.
The tokenizer uses Qwen2's exact normalizer and pre-tokenizer: transformers loads any `model_type: qwen2`
directory as `Qwen2Tokenizer`, which rebuilds those parts, so anything else would tokenize differently on reload.
Everything that shapes the output is a constant here, and `recipe_digest` hashes them all into the cache key.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch

RECIPE_VERSION = 2  # bump when the code below changes in a way the constants do not show
SEED = 0
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
QWEN_PRETOKENIZE = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ARCH = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=2048)
VOCAB_SIZE = 1024
# Words of the tasks' questions and prompt variants, and of SkillFactory traces. A fixed copy, not an import, so
# that editing a prompt does not silently change the model the tests run on.
WORDS = tuple("""
Using the numbers in list create an equation that equals You can use basic arithmetic operations and each number
only be used once What is Let's think step by then give your resulting as answer tags To solve this question write
a high level plan you intend to starting with First I'll try understand problem better writing out go really deep
into detail about how I should execute whatever reasoning required tag find some potential answers word
Alternatively distinguish them when are discussing if they correct Begin response Rewritten Question rewriting
making it contain what needed like problems understanding executing giving Write would over always end never
ever without multiple for deliberate saying between on final Correct Incorrect verdict reflect sample think
Let me check so therefore The result try another approach Express common fraction Simplify Evaluate Solve
""".split())
TAGS = ("answer", "think", "sample", "reflect", "verdict")


def _line(rng: random.Random) -> str:
    """One line of arithmetic chatter in the tasks' formats; results computed directly, never by eval."""
    a, b, c = rng.randint(1, 999), rng.randint(1, 99), rng.randint(1, 9)
    op = rng.choice("+-*/")
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
    words = " ".join(rng.choices(WORDS, k=rng.randint(3, 14)))
    tag = rng.choice(TAGS)
    kind = rng.randrange(3)
    if kind == 0:
        return (f"Using the numbers in the list [{a}, {b}, {c}], create an equation that equals {value + c}. "
                f"{words}. <{tag}>({a} {op} {b}) + {c}</{tag}>\n")
    if kind == 1:
        return f"What is {a} x {b}? {words}: {a} x {b} = {a * b}\n<answer>{a * b}</answer>\n"
    return f"{words}, \"{a} {op} {b} = {value}\". <{tag}>{value}</{tag}> $\\boxed{{{value}}}$\n"


def corpus(seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    return [_line(rng) for _ in range(6000)] + ["system\nuser\nassistant\n"] * 200


def recipe_digest() -> str:
    """A hash of everything the build depends on, for the cache directory name."""
    recipe = [RECIPE_VERSION, SEED, SPECIALS, QWEN_PRETOKENIZE, CHATML, ARCH, VOCAB_SIZE, WORDS, TAGS]
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def build_tiny(out_dir: Path, seed: int = SEED) -> None:
    """Write a tiny model + tokenizer directory; the same seed gives the same bytes."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(seed), trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|pad|>",
        unk_token=None, model_max_length=ARCH["max_position_embeddings"], padding_side="left")
    hf_tok.chat_template = CHATML

    cfg = Qwen2Config(vocab_size=len(hf_tok), tie_word_embeddings=False, bos_token_id=hf_tok.bos_token_id,
                      eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id, **ARCH)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    for k in ("pad", "eos", "bos"):
        setattr(model.generation_config, f"{k}_token_id", getattr(hf_tok, f"{k}_token_id"))
    model.save_pretrained(out_dir)
    hf_tok.save_pretrained(out_dir)
