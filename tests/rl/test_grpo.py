"""GRPO on the tiny model: a learnable reward rises, a killed run resumes to the same weights, and the whole
`method=none rl=grpo_cpu` pipeline runs with vLLM rollouts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skillexp.config import RunConfig, load_run_config
from skillexp.models import resolve_model_dir
from skillexp.pipeline import runtime, stage_inputs
from skillexp.rl.stage import rl_stage
from skillexp.stage_cache import StageCache
from skillexp.tracking import Tracker
from skillexp.utils.io import read_jsonl
from tests.conftest import kill_when
from tests.test_configs import _compose
from tests.test_main import run_cli

TINY_RL = ["model=tiny", "generation=hf", "method=none", "rl=grpo_cpu", "logger=none", "+task.num_rl=64",
           "rl.prompts_per_step=8", "rl.group_size=8", "rl.mini_batch_prompts=8", "rl.sampling.max_tokens=32",
           "rl.optim.lr=1e-2", "rl.val_every_steps=0", "rl.rewards=[{fn: tests.rl.rewards.letter_a, weight: 1.0}]",
           "trainer.micro_batch_size=16", "scoring.workers=0"]
# ZeRO-3 on trainer=cpu: without its selective checkpointing, which ZeRO-3 cannot run
ZERO3 = ["trainer.zero_stage=3", "trainer.gradient_checkpointing=false"]


def tiny_run(extra: list[str]) -> RunConfig:
    return load_run_config(_compose([*TINY_RL, *extra]))


def grpo(run: RunConfig, model_dir: Path, out: Path) -> Path:
    """The rl stage of `run` from `model_dir`, into `out/rl`, logging to `out/metrics.jsonl`."""
    tracker = Tracker(run.logger, out, {})
    try:
        inputs = stage_inputs(run, StageCache(None, out), model_dir)["rl"]
        rl_stage(inputs, out / "rl", runtime(run, out, tracker))
        return out / "rl" / "model"
    finally:
        tracker.finish()


def _grpo(out: Path, steps: int, save_every: int = 100) -> Path:
    run = tiny_run([f"rl.steps={steps}", f"rl.save_every_steps={save_every}"])
    return grpo(run, resolve_model_dir(run.model, Path(run.paths.cache_dir)), out)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize("engine", ["fp32", "bf16", "zero3"])
def test_skipping_flat_micro_batches_gives_the_same_weights(tmp_path: Path, tiny_model_dir: Path,
                                                             engine: str) -> None:
    """Micro-batches whose rows all have advantage 0 skip the forward (a zero loss of the parameters; under ZeRO-3
    a one-token forward); the optimizer still steps on the same (partly or wholly zero) gradient, so AdamW's
    moments, weight decay and the schedule come out as if the full forward had run: the weights are bit for bit
    the same, in fp32, bf16 and under ZeRO-3."""
    setting = ZERO3 if engine == "zero3" else [f"trainer.precision={engine}"]
    common = ["rl.steps=6", "rl.prompts_per_step=4", "rl.group_size=4", "rl.mini_batch_prompts=4",
              "trainer.micro_batch_size=8", *setting, "rl.optim.weight_decay=0.1",
              "rl.rewards=[{fn: tests.rl.rewards.letter_a_some, weight: 1.0}]"]
    out = {}
    for skip in (True, False):
        run = tiny_run([*common, f"rl.skip_flat={str(skip).lower()}"])
        out[skip] = grpo(run, tiny_model_dir, tmp_path / str(skip))
    skipped = [r["rl/skipped_micro_batch_frac"] for r in read_jsonl(tmp_path / "True" / "metrics.jsonl")
               if "rl/skipped_micro_batch_frac" in r]
    assert 1.0 in skipped and any(0 < f < 1 for f in skipped), skipped  # whole steps and parts of steps skipped
    assert all(r["rl/skipped_micro_batch_frac"] == 0 for r in read_jsonl(tmp_path / "False" / "metrics.jsonl")
               if "rl/skipped_micro_batch_frac" in r)
    a, b = _weights(out[True]), _weights(out[False])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in _weights(tiny_model_dir).items())  # it did train


# with lm_head: the tiny random model learns to write more "a"s mostly through its unembedding
LORA = ["trainer.lora={r: 16, alpha: 32, target_modules: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
        "down_proj, lm_head]}", "rl.optim.lr=3e-2", "rl.kl_coef=1e-3"]  # KL to the policy without adapters


@pytest.mark.parametrize("setting", ["fp32", pytest.param("bf16", marks=pytest.mark.long), "lora", "checkpointing",
                                     "dr_grpo", "zero3"])
def test_a_learnable_reward_rises(tmp_path: Path, tiny_model_dir: Path, setting: str) -> None:
    """fp32; bf16 compute with fp32 master weights (DeepSpeed's bf16 optimizer), which halves the update's time on
    CPUs with AVX512-BF16 and is the papers' training precision on GPUs; LoRA adapters on attention and MLP,
    exported merged under the base model's names; gradient checkpointing (the GPU presets'), under which the update
    runs each completion with its prompt (transformers keeps no KV cache for the shared-prompt forward then); and
    Dr.GRPO's constant normaliser (the max response length) with unscaled advantages; ZeRO-3 (the head's
    log-probs through its sharded weight, HF generate on the sharded policy)."""
    extra = {"lora": LORA, "checkpointing": ["trainer.gradient_checkpointing=true"], "zero3": ZERO3,
             "dr_grpo": ["rl.loss_agg=seq_mean_token_sum_norm", "rl.advantage_scale=none"]}
    run = tiny_run(["rl.steps=12", *extra.get(setting, [f"trainer.precision={setting}"])])
    grpo(run, tiny_model_dir, tmp_path)
    logged = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "rl/reward_mean" in r]
    rewards = [r["rl/reward_mean"] for r in logged]
    assert len(rewards) == 12
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > 2 * first and last > first + 0.05, rewards
    row = logged[-1]
    for key in ("rl/loss", "rl/clip_frac_low", "rl/clip_frac_high", "rl/entropy", "rl/frac_zero_std_groups",
                "rl/completion_len_mean", "rl/truncation_rate", "rl/time/rollout_s", "rl/time/generate_s",
                "rl/time/score_s", "rl/time/train_s",
                "rl/rollout_tokens_per_s", "rl/grad_norm", "rl/reward/tests.rl.rewards.letter_a"):
        assert key in row, key
    if setting == "lora":
        assert row["rl/kl"] > 0, "the reference is the policy with its adapters off"
    exported = load_file(tmp_path / "rl" / "model" / "model.safetensors")
    assert set(exported) == set(load_file(tiny_model_dir / "model.safetensors"))


@pytest.mark.parametrize("kill", ["before_first_checkpoint", "after_first_checkpoint"])
def test_killed_grpo_resumes_to_the_same_weights_and_logs_each_step_once(tmp_path: Path, tiny_model_dir: Path,
                                                                          kill: str) -> None:
    full = _grpo(tmp_path / "a", steps=6, save_every=4)
    out = tmp_path / "b"
    code = f"from pathlib import Path; from tests.rl.test_grpo import _grpo; _grpo(Path({str(out)!r}), 6, 4)"
    latest, steps = out / "rl" / "checkpoints" / "latest.json", out / "rl" / "steps.jsonl"
    if kill == "after_first_checkpoint":  # at step 4; step 5 may be logged before the kill lands
        kill_when(code, latest.exists, tmp_path / "child.log")
        assert json.loads(latest.read_text())["step"] < 6
    else:  # after two logged steps, no checkpoint yet
        kill_when(code, lambda: steps.exists() and len(read_jsonl(steps)) >= 2, tmp_path / "child.log")
        assert not latest.exists()
    resumed = _grpo(out, steps=6, save_every=4)
    # the stage's step log and the run's metrics hold steps 1-6 once each, as a run never killed does
    assert [r["step"] for r in read_jsonl(steps)] == list(range(1, 7))
    assert sorted(r["step"] for r in read_jsonl(out / "metrics.jsonl") if "rl/reward_mean" in r) == list(range(1, 7))
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.long  # vLLM rollouts, validation and weight sync are in the suite (tests/rl/test_grpo_ranks.py)
def test_rl_only_pipeline_with_vllm_rollouts(tmp_path: Path) -> None:
    run_cli(["model=tiny", "generation=vllm", "method=none", "rl=grpo_cpu", "+task.num_rl=32", "rl.steps=3",
             "rl.prompts_per_step=4", "rl.group_size=4", "rl.mini_batch_prompts=2", "rl.sampling.max_tokens=16",
             "rl.val_every_steps=2", "rl.val_num_items=2", "rl.save_every_steps=2", "rl.sample_table_every_steps=1",
             "rl.rewards=[{fn: task, weight: 1.0}, {fn: format, weight: 0.5}]", "trainer.micro_batch_size=4",
             "eval=countdown_cpu", "eval.num_items=2", "eval.k=2", "eval.pass_k=[1]", "eval.sampling.max_tokens=16",
             "scoring.workers=2"], tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "pre_rl/countdown_3/mean@2" in summary and "countdown_3/mean@2" in summary
    logged = read_jsonl(tmp_path / "metrics.jsonl")
    steps = [r["step"] for r in logged if "rl/reward_mean" in r]
    assert steps == [1, 2, 3]
    assert [r["step"] for r in logged if "rl_val/avg/mean@1" in r] == [0, 2, 3], "greedy validation: one answer"
    sync = [r["rl/time/sync_s"] for r in logged if "rl/time/sync_s" in r]
    assert len(sync) == 3 and all(s > 0 for s in sync)
    assert (tmp_path / "rl" / "model" / "model.safetensors").exists()


@pytest.mark.parametrize("share, fused, checkpointing", [(True, False, False), (False, True, False),
                                                         (True, True, False), (True, True, "selective"),
                                                         (False, True, "selective")])
def test_every_forward_gives_the_full_forwards_logprobs_and_gradients(tiny_model_dir: Path, share: bool,
                                                                       fused: bool, checkpointing,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each group's prompt run once (KV cache repeated for its completions) and the log-probs taken from the last
    hidden state (training/head.py) give the same completion log-probs, entropies and gradients as running every
    prompt + completion in full through the model's logits; so does either under selective checkpointing, which
    recomputes the full forward's layers and leaves the shared forward's alone (its KV cache)."""
    from transformers import AutoModelForCausalLM

    from skillexp.generation.base import Completion
    from skillexp.training import recompute
    from skillexp.training.forward import completion_logprobs, policy_head
    from skillexp.rl.rollout import Rollouts, group_tensors, rollout_tensors

    recomputed = []
    policy = recompute._policy
    monkeypatch.setattr(recompute, "_policy", lambda *a, **k: recomputed.append(1) or policy(*a, **k))

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompts = [torch.randint(5, 300, (n,)).tolist() for n in (7, 12)]
    comps = [torch.randint(5, 300, (n,)).tolist() for n in (4, 9, 1, 6, 3, 9)]
    ro = Rollouts(3, [None] * 6, [prompts[i // 3] for i in range(6)],  # type: ignore[list-item]
                  [Completion("", c, "stop") for c in comps], [0.0] * 6)
    full, shared = rollout_tensors(ro, list(range(6)), 0), group_tensors(ro, [0, 1], 0)
    mask = full["completion_mask"]
    assert torch.equal(mask, shared["completion_mask"])
    weights = torch.randn(mask.shape)  # a loss that weighs every token differently

    def run(batch, head):
        model.zero_grad()
        lp, ent = completion_logprobs(model, batch, 0.7, head, entropy=True)
        (lp * mask * weights).sum().backward()
        return lp.detach() * mask, ent * mask, {n: p.grad.clone() for n, p in model.named_parameters()}

    head = policy_head(model)
    assert head is not None and head[1] is model.lm_head
    lp_ref, ent_ref, g_ref = run(full, None)
    recompute.enable_checkpointing(model.train(), checkpointing)  # the tiny model has no dropout
    lp, ent, grads = run(shared if share else full, head if fused else None)
    assert bool(recomputed) == (checkpointing == "selective" and not share)
    torch.testing.assert_close(lp, lp_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ent_ref, atol=1e-5, rtol=1e-5)
    for name in g_ref:
        torch.testing.assert_close(grads[name], g_ref[name], atol=1e-5, rtol=1e-4, msg=name)


def test_one_token_completions_share_the_prompt_and_still_call_the_model_twice(tiny_model_dir: Path) -> None:
    """A batch of one-token completions has nothing after the prompt's prediction; the shared forward still calls
    the model a second time (under ZeRO-3 every call is collective: a rank whose batch has longer completions
    calls it twice, and the ranks must stay in step), with the full forward's log-probs."""
    from transformers import AutoModelForCausalLM

    from skillexp.generation.base import Completion
    from skillexp.training.forward import completion_logprobs
    from skillexp.rl.rollout import Rollouts, group_tensors, rollout_tensors

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompts = [torch.randint(5, 300, (n,)).tolist() for n in (7, 12)]
    ro = Rollouts(2, [None] * 4, [prompts[i // 2] for i in range(4)],  # type: ignore[list-item]
                  [Completion("", [i + 5], "stop") for i in range(4)], [0.0] * 4)
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            ref, _ = completion_logprobs(model, rollout_tensors(ro, list(range(4)), 0), 1.0)
            calls.clear()
            shared, _ = completion_logprobs(model, group_tensors(ro, [0, 1], 0), 1.0)
    finally:
        hook.remove()
    assert len(calls) == 2 and shared.shape == (4, 1)
    torch.testing.assert_close(shared, ref, atol=1e-5, rtol=1e-5)


def test_the_head_from_the_hidden_state_under_zero3_gives_the_logits_gradients(tiny_model_dir: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ZeRO-3 the head's weight is a shard outside its module's forward: the head's function runs as the
    module's forward, where DeepSpeed gathers the weight (and again for the backward) and reduce-scatters its
    gradient. The log-probs, entropies and every parameter's full gradient equal the logits path's."""
    from deepspeed.utils import safe_get_full_grad
    from transformers import AutoModelForCausalLM

    from skillexp.generation.base import Completion
    from skillexp.training.forward import completion_logprobs, policy_head
    from skillexp.rl.rollout import Rollouts, rollout_tensors
    from skillexp.training.config import OptimConfig, TrainerConfig
    from skillexp.training.engine import build_engine
    from tests.training.test_weights import _no_persistent_params

    _no_persistent_params(monkeypatch)  # every parameter sharded, the head's too
    torch.manual_seed(0)
    prompts = [torch.randint(5, 300, (n,)).tolist() for n in (7, 12)]
    comps = [torch.randint(5, 300, (n,)).tolist() for n in (4, 9, 1, 6)]
    ro = Rollouts(2, [None] * 4, [prompts[i // 2] for i in range(4)],  # type: ignore[list-item]
                  [Completion("", c, "stop") for c in comps], [0.0] * 4)
    batch = rollout_tensors(ro, list(range(4)), 0)
    mask = batch["completion_mask"]
    weights = torch.randn(mask.shape)

    def run(fused: bool):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        engine = build_engine(model, TrainerConfig(name="cpu", zero_stage=3), OptimConfig(lr=1e-2), total_steps=1)
        head = policy_head(engine) if fused else None
        assert (head is not None) == fused
        lp, ent = completion_logprobs(engine, batch, 0.7, head, entropy=True)
        engine.backward((lp * mask * weights).sum())
        return lp.detach() * mask, ent * mask, {n: safe_get_full_grad(p).clone()
                                                for n, p in engine.module.named_parameters()}

    lp_ref, ent_ref, g_ref = run(False)
    lp, ent, grads = run(True)
    torch.testing.assert_close(lp, lp_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ent, ent_ref, atol=1e-5, rtol=1e-5)
    assert g_ref["lm_head.weight"].abs().sum() > 0
    for name in g_ref:
        torch.testing.assert_close(grads[name], g_ref[name], atol=1e-5, rtol=1e-4, msg=name)
