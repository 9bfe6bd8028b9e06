"""Both generation backends on the tiny model: sampling options, log-probs, stop strings, seeds, greedy agreement."""
from __future__ import annotations

import gc

import pytest
import torch

from skillexp.generation import SamplingParams, build_generator, render_chat
from skillexp.generation.config import GenerationConfig
from skillexp.generation.hf import sequence_logprobs
from tests.conftest import TINY

QUESTIONS = [f"What is {a} + {b}? <answer>" for a, b in [(1, 2), (13, 8), (99, 1), (4, 44), (7, 70), (0, 5),
                                                         (31, 31), (250, 17)]]


@pytest.fixture(scope="module")
def prompts(hf_tiny):
    return render_chat(hf_tiny.tokenizer, [[{"role": "user", "content": q}] for q in QUESTIONS])


def teacher_forced(hf_tiny, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    ids = torch.tensor([prompt + tokens])
    return sequence_logprobs(hf_tiny.model, ids, torch.ones_like(ids), len(prompt))[0]


def ids(out) -> list[list[list[int]]]:
    return [[c.token_ids for c in group] for group in out]


def check_shapes(out, n: int, max_tokens: int, eos: int) -> None:
    for group in out:
        assert len(group) == n
        for c in group:
            assert 1 <= len(c.token_ids) <= max_tokens and len(c.logprobs) == len(c.token_ids)
            assert all(lp <= 0 for lp in c.logprobs)
            ends_at_eos = c.token_ids[-1] == eos
            assert eos not in c.token_ids[:-1], "tokens after EOS must be stripped"
            assert c.finish_reason == ("stop" if ends_at_eos else "length")
            assert ends_at_eos or len(c.token_ids) == max_tokens


def test_hf_samples_n_with_lengths_and_logprobs(hf_tiny, prompts) -> None:
    out = hf_tiny.generate(prompts[:3], SamplingParams(n=4, temperature=1.0, max_tokens=12, logprobs=True, seed=3))
    assert len(out) == 3
    check_shapes(out, 4, 12, hf_tiny.tokenizer.eos_token_id)


def test_hf_logprobs_are_the_raw_model_distribution(hf_tiny, prompts) -> None:
    """Temperature and top-k shape the sampling, not the reported log-probs (vLLM's raw_logprobs)."""
    out = hf_tiny.generate(prompts[:2], SamplingParams(n=2, temperature=0.7, top_k=40, max_tokens=10, logprobs=True,
                                                       seed=0))
    for prompt, group in zip(prompts, out):
        for c in group:
            assert torch.allclose(torch.tensor(c.logprobs), teacher_forced(hf_tiny, prompt, c.token_ids), atol=1e-4)


def test_hf_seed_makes_sampling_reproducible(hf_tiny, prompts) -> None:
    p = SamplingParams(n=2, temperature=1.0, max_tokens=16, seed=11)
    state = torch.random.get_rng_state()
    a, b = hf_tiny.generate(prompts[:2], p), hf_tiny.generate(prompts[:2], p)
    assert torch.equal(torch.random.get_rng_state(), state), "a seeded call must not move the global RNG"
    assert ids(a) == ids(b)
    c = hf_tiny.generate(prompts[:2], SamplingParams(n=2, temperature=1.0, max_tokens=16, seed=12))
    assert ids(a) != ids(c)


def test_hf_batching_and_left_padding_do_not_change_greedy_output(hf_tiny, tiny_model_dir, prompts) -> None:
    small = build_generator(tiny_model_dir, TINY, GenerationConfig(backend="hf", batch_size=3, show_progress=False))
    p = SamplingParams(temperature=0.0, max_tokens=16)
    alone = [small.generate([q], p)[0] for q in prompts[:3]]  # no padding at all
    assert ids(small.generate(prompts, p)) == ids(hf_tiny.generate(prompts, p))
    assert ids(alone) == ids(hf_tiny.generate(prompts[:3], p))
    small.close()


def test_hf_stop_strings_cut_text_at_the_first_stop(hf_tiny, prompts) -> None:
    free = hf_tiny.generate(prompts[:4], SamplingParams(temperature=0.0, max_tokens=24))
    text = next(g[0].text for g in free if len(g[0].text) > 4)  # a string the greedy text really contains
    stop = text[2:4]
    out = hf_tiny.generate(prompts[:4], SamplingParams(temperature=0.0, max_tokens=24, stop=[stop, "never-seen"]))
    hits = 0
    for g_free, g in zip(free, out):
        if stop in g_free[0].text:
            hits += 1
            assert g[0].text == g_free[0].text[: g_free[0].text.index(stop)]
            assert g[0].finish_reason == "stop"
            # token ids run up to the token that completed the stop string, as in vLLM
            assert g[0].token_ids == g_free[0].token_ids[: len(g[0].token_ids)]
            assert stop in hf_tiny.tokenizer.decode(g[0].token_ids)
            assert stop not in hf_tiny.tokenizer.decode(g[0].token_ids[:-1])
    assert hits


def test_greedy_rejects_n_above_one(hf_tiny, prompts) -> None:
    with pytest.raises(ValueError, match="identical"):
        hf_tiny.generate(prompts[:1], SamplingParams(n=2, temperature=0.0))


def test_build_generator_picks_the_backend(tiny_model_dir) -> None:
    gen = build_generator(tiny_model_dir, TINY, GenerationConfig(backend="hf", show_progress=False))
    assert type(gen).__name__ == "HFGenerator"
    gen.close()


@pytest.mark.vllm
def test_vllm_and_hf_greedy_agree(hf_tiny, vllm_tiny, prompts) -> None:
    p = SamplingParams(temperature=0.0, max_tokens=32)
    hf, vl = hf_tiny.generate(prompts, p), vllm_tiny.generate(prompts, p)
    assert ids(hf) == ids(vl)
    # vLLM's incremental detokenizer holds back a trailing incomplete UTF-8 sequence that HF decodes as U+FFFD
    assert [g[0].text.rstrip("\ufffd") for g in hf] == [g[0].text.rstrip("\ufffd") for g in vl]
    assert [g[0].finish_reason for g in hf] == [g[0].finish_reason for g in vl]


@pytest.mark.vllm
def test_weight_sync_makes_vllm_follow_the_updated_policy(hf_tiny, vllm_tiny, prompts) -> None:
    """GRPO's sync: perturbed weights reach the running vLLM engine, whose greedy output then equals HF's."""
    original = {n: q.detach().clone() for n, q in hf_tiny.model.named_parameters()}
    p = SamplingParams(temperature=0.0, max_tokens=24)
    before = ids(vllm_tiny.generate(prompts, p))
    try:
        torch.manual_seed(0)
        hf_tiny.load_weights((n, q + 0.3 * torch.randn_like(q)) for n, q in original.items())
        vllm_tiny.load_weights(hf_tiny.model.named_parameters())
        after = ids(vllm_tiny.generate(prompts, p))
        assert after != before
        assert after == ids(hf_tiny.generate(prompts, p))
    finally:  # both fixtures are shared: put the original weights back
        hf_tiny.load_weights(original.items())
        vllm_tiny.load_weights(original.items())
    assert ids(vllm_tiny.generate(prompts, p)) == before


def test_hf_generator_can_sample_with_the_training_model_itself(hf_tiny, tiny_model_dir, prompts) -> None:
    from skillexp.generation.hf import HFGenerator

    model = hf_tiny.model.train()
    gen = HFGenerator(tiny_model_dir, TINY, GenerationConfig(backend="hf", show_progress=False), model=model)
    p = SamplingParams(temperature=0.0, max_tokens=12)
    assert ids(gen.generate(prompts[:2], p)) == ids(hf_tiny.generate(prompts[:2], p))
    assert model.training, "the training model goes back to train mode after sampling"
    model.eval()


@pytest.mark.vllm
def test_vllm_and_hf_cut_stop_strings_alike(hf_tiny, vllm_tiny, prompts) -> None:
    free = hf_tiny.generate(prompts, SamplingParams(temperature=0.0, max_tokens=24))
    stops = [g[0].text[3:5] for g in free[:2] if len(g[0].text) > 5]
    p = SamplingParams(temperature=0.0, max_tokens=24, stop=stops)
    hf, vl = hf_tiny.generate(prompts, p), vllm_tiny.generate(prompts, p)
    assert ids(hf) == ids(vl)
    assert [g[0].text.rstrip("\ufffd") for g in hf] == [g[0].text.rstrip("\ufffd") for g in vl]
    assert [g[0].finish_reason for g in hf] == [g[0].finish_reason for g in vl]
    assert any(g[0].finish_reason == "stop" and len(g[0].token_ids) < 24 for g in vl)


@pytest.mark.vllm
def test_vllm_samples_n_with_raw_logprobs(hf_tiny, vllm_tiny, prompts) -> None:
    out = vllm_tiny.generate(prompts[:3], SamplingParams(n=3, temperature=0.7, top_k=40, max_tokens=12,
                                                         logprobs=True))
    assert len(out) == 3
    check_shapes(out, 3, 12, hf_tiny.tokenizer.eos_token_id)
    for prompt, group in zip(prompts, out):
        for c in group:  # the same numbers a teacher-forced HF pass gives: the raw model distribution
            assert torch.allclose(torch.tensor(c.logprobs), teacher_forced(hf_tiny, prompt, c.token_ids), atol=1e-3)


@pytest.mark.vllm
def test_vllm_seed_makes_sampling_reproducible(vllm_tiny, prompts) -> None:
    long_prompts = [p * (900 // len(p)) for p in prompts]  # > 4096 tokens in all: prefill spans engine steps
    p = SamplingParams(n=3, temperature=1.0, max_tokens=16, seed=5)
    a, b = vllm_tiny.generate(long_prompts, p), vllm_tiny.generate(long_prompts, p)
    assert ids(a) == ids(b)
    c = vllm_tiny.generate(long_prompts, SamplingParams(n=3, temperature=1.0, max_tokens=16, seed=6))
    assert ids(a) != ids(c)
    assert len({tuple(t) for t in ids(a)[0]}) > 1, "the n samples of a prompt must differ"


@pytest.mark.vllm
def test_the_cpu_engine_samples_with_the_sort_free_mask(vllm_tiny, prompts) -> None:
    from vllm.v1.sample.ops import topk_topp_sampler

    assert topk_topp_sampler.apply_top_k_top_p.__name__ == "apply_top_k_top_p"
    assert hasattr(topk_topp_sampler.apply_top_k_top_p, "__wrapped__")  # ours, in front of vLLM's
    params = SamplingParams(n=2, temperature=0.7, top_p=0.8, top_k=20, max_tokens=8, seed=3)
    first, again = vllm_tiny.generate(prompts, params), vllm_tiny.generate(prompts, params)
    assert [[c.token_ids for c in o] for o in first] == [[c.token_ids for c in o] for o in again]


@pytest.mark.vllm
def test_vllm_close_frees_the_engine(tiny_model_dir, prompts) -> None:
    import psutil

    from skillexp.generation.vllm import VLLMGenerator

    rss = lambda: psutil.Process().memory_info().rss / 2**30  # noqa: E731
    before = rss()
    gen = VLLMGenerator(tiny_model_dir, TINY, GenerationConfig(backend="vllm", show_progress=False,
                                                               cpu_kv_cache_gib=1), seed=1)
    assert gen.generate(prompts[:1], SamplingParams(temperature=0.0, max_tokens=4))[0][0].token_ids
    if torch.cuda.is_available():
        pytest.skip("the checks below are for the CPU engine")
    # the 4 samples of a 70-token prompt share its first two 32-token blocks (generation.cpu_block_size)
    from vllm import SamplingParams as VLLMSamplingParams
    from vllm.inputs import TokensPrompt

    assert gen.llm.llm_engine.vllm_config.cache_config.block_size == 32
    out = gen.llm.generate([TokensPrompt(prompt_token_ids=[(7 * i) % 200 + 3 for i in range(70)])],
                           VLLMSamplingParams(n=4, max_tokens=2, seed=0), use_tqdm=False)
    assert out[0].num_cached_tokens == 64
    assert rss() - before > 0.8  # the 1 GiB KV cache is allocated up front
    gen.close()
    gen.close()  # idempotent
    gc.collect()
    assert rss() - before < 0.5


@pytest.mark.vllm
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])  # bf16 logits have many ties
def test_the_cpu_top_k_top_p_mask_is_vllms(dtype: torch.dtype) -> None:
    """The sort-free top-k-then-top-p mask equals vLLM's own, row by row: the eval's k 20 / p 0.8, rows without a
    top-k (k = V) or a top-p (p = 1) in the same batch, k 1, and a p that keeps only the most likely token."""
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    from skillexp.generation.vllm import top_k_then_top_p

    torch.manual_seed(0)
    rows, vocab = 12, 4096
    logits = (torch.randn(rows, vocab) * 3).to(dtype).float()
    k = torch.tensor([20, 20, vocab, 1, 5, 50, 20, vocab, 2, 20, 7, 20])
    p = torch.tensor([0.8, 1.0, 0.8, 0.8, 0.05, 0.95, 0.5, 1.0, 0.99, 0.3, 0.8, 1e-6])
    ours = top_k_then_top_p(logits.clone(), k, p)
    theirs = apply_top_k_top_p_pytorch(logits.clone(), k.clone(), p.clone(), allow_cpu_sync=True)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.equal(ours, theirs)
    assert (~torch.isinf(ours)).sum(-1)[3] == 1 and (~torch.isinf(ours)).sum(-1)[11] == 1

