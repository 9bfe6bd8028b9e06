"""SFT on the tiny model: the assistant-only mask is exact, loss falls, and kill/resume reproduces the weights."""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skillexp.tracking import LoggerConfig
from skillexp.models import load_tokenizer
from skillexp.tasks import build_task
from skillexp.tracking import Tracker
from skillexp.training.config import OptimConfig, SFTConfig, TrainerConfig
from skillexp.training.sft import run_sft
from skillexp.training.forward import policy_head
from skillexp.training.sft_data import (IGNORE, collate, forward, packed_batches, sft_loss, tokenize_conversation,
                                        tokenize_dataset)
from skillexp.utils.io import read_jsonl
from tests.conftest import TINY, kill_when


def write_dataset(path: Path, n: int = 96) -> Path:
    task = build_task("countdown", {"num_numbers": 3, "num_train": n, "num_rl": 0, "num_val": 0, "num_test": 0})
    rows = [{"messages": task.messages(it) + [{"role": "assistant", "content": task.reference_solution(it)}]}
            for it in task.items("train")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mask_covers_exactly_the_assistant_turns(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(tiny_model_dir, TINY)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"},
                {"role": "assistant", "content": "<answer>5</answer>"}, {"role": "user", "content": "And 2 + 4?"},
                {"role": "assistant", "content": "<answer>6</answer>"}]
    ex = tokenize_conversation(tok, messages)
    trained = tok.decode([t for t, label in zip(ex.input_ids, ex.labels) if label != IGNORE])
    assert trained == "<answer>5</answer><|im_end|>\n<answer>6</answer><|im_end|>\n"
    assert tok.decode(ex.input_ids) == tok.apply_chat_template(messages, tokenize=False)


def test_truncation_policy_is_counted(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(tiny_model_dir, TINY)
    conv = [[{"role": "user", "content": "hi " * 10}, {"role": "assistant", "content": "yo " * 80}]]
    kept, stats = tokenize_dataset(tok, conv, max_length=80, truncation="right")
    assert stats.truncated == 1 and len(kept[0].input_ids) == 80
    kept, stats = tokenize_dataset(tok, conv, max_length=80, truncation="drop")
    assert stats.dropped == 1 and not kept


TRAINER = TrainerConfig(name="cpu", micro_batch_size=8, grad_accum=1, save_every_steps=4, log_every_steps=1)
OPTIM = OptimConfig(lr=3e-3, warmup_ratio=0.1)


def _sft(data: Path, model_dir: Path, out: Path, max_steps: int, trainer: TrainerConfig = TRAINER) -> Path:
    tracker = Tracker(LoggerConfig(backend="none"), out.parent, {})
    try:
        return run_sft(data, model_dir, TINY, trainer, SFTConfig(max_steps=max_steps, max_length=256,
                                                                 val_fraction=0.15, eval_every_steps=4, optim=OPTIM),
                       out, tracker, seed=0)
    finally:
        tracker.finish()


@pytest.mark.parametrize("checkpointing", [False, "selective", True])
def test_sft_lowers_validation_loss_and_exports(tmp_path: Path, tiny_model_dir: Path, checkpointing) -> None:
    """In every checkpointing mode; the exported model's config is the base's (a training setting such as
    `use_cache=False` left in it would, among other things, keep it from the base model's pooled vLLM engine)."""
    from skillexp.generation.config import GenerationConfig
    from skillexp.generation.pool import _kind

    data = write_dataset(tmp_path / "data.jsonl")
    model = _sft(data, tiny_model_dir, tmp_path / "sft", max_steps=12,
                 trainer=dataclasses.replace(TRAINER, gradient_checkpointing=checkpointing))
    assert _kind(model, TINY, GenerationConfig()) == _kind(tiny_model_dir, TINY, GenerationConfig())
    val = [r["sft/val_loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "sft/val_loss" in r]
    assert len(val) == 3 and val[-1] < val[0] - 0.5, val
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(model)
    assert not reloaded.config.tie_word_embeddings
    assert (model / "tokenizer.json").exists()
    # a finished stage keeps its model, not the resumable optimizer state (gigabytes for real models)
    assert not (tmp_path / "sft" / "checkpoints").exists()


def test_keep_final_checkpoint_leaves_the_last_step_resumable(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    trainer = dataclasses.replace(TRAINER, keep_final_checkpoint=True)
    try:
        run_sft(data, tiny_model_dir, TINY, trainer,
                SFTConfig(max_steps=3, max_length=256, val_fraction=0.0, optim=OPTIM),
                tmp_path / "sft", tracker, seed=0)
    finally:
        tracker.finish()
    latest = json.loads((tmp_path / "sft" / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 3  # save_every_steps is 4: this one was written for keeping


def _logged_steps(path: Path, key: str) -> list[int]:
    return sorted(r["step"] for r in read_jsonl(path) if key in r)


@pytest.mark.parametrize("kill", ["before_first_checkpoint", "after_first_checkpoint"])
def test_killed_sft_resumes_to_the_same_weights_and_logs_each_step_once(tmp_path: Path, tiny_model_dir: Path,
                                                                         kill: str) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    full = _sft(data, tiny_model_dir, tmp_path / "a" / "sft", max_steps=12)
    # the same run in a child process, SIGKILLed after two logged steps (no checkpoint yet: they come every 4) or
    # once its first checkpoint (step 4) is published
    out = tmp_path / "b" / "sft"
    code = (f"from pathlib import Path; from tests.training.test_sft import _sft; "
            f"_sft(Path({str(data)!r}), Path({str(tiny_model_dir)!r}), Path({str(out)!r}), max_steps=12)")
    latest, metrics = out / "checkpoints" / "latest.json", tmp_path / "b" / "metrics.jsonl"
    if kill == "after_first_checkpoint":
        kill_when(code, latest.exists, tmp_path / "child.log")
        step = json.loads(latest.read_text())["step"]
        assert step < 12 and not (out / "model").exists()
    else:
        kill_when(code, lambda: metrics.exists() and len(_logged_steps(metrics, "sft/loss")) >= 2,
                  tmp_path / "child.log")
        step = 0
        assert not latest.exists()
    trained = _logged_steps(metrics, "sft/loss")
    assert trained and min(trained) <= max(step, 1)  # the child trained before dying
    resumed = _sft(data, tiny_model_dir, out, max_steps=12)
    # the run's log holds the steps of the attempts that made the weights, each once: the killed attempt's up to
    # its checkpoint, the rerun's after it
    assert _logged_steps(metrics, "sft/loss") == list(range(1, 13))
    assert _logged_steps(metrics, "sft/val_loss") == [4, 8, 12]
    assert _logged_steps(metrics, "sft/total_steps") == [0]
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_too_little_data_for_grad_accum_fails_clearly(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=4)
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    trainer = TrainerConfig(name="cpu", micro_batch_size=8, grad_accum=2)
    with pytest.raises(ValueError, match="fewer than trainer.grad_accum=2"):
        run_sft(data, tiny_model_dir, TINY, trainer, SFTConfig(max_steps=2, val_fraction=0.0), tmp_path / "sft",
                tracker, seed=0)
    tracker.finish()


def test_packed_batches_place_every_example_once_within_the_row_budget() -> None:
    lengths = [random.Random(i).randint(5, 60) for i in range(300)]
    batches = packed_batches(lengths, rows=3, pack_length=64, seed=0, epoch=1)
    rows = [row for batch in batches for row in batch]
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) < 0.7 * 300  # packing actually shares rows
    assert batches == packed_batches(lengths, rows=3, pack_length=64, seed=0, epoch=1)
    assert batches != packed_batches(lengths, rows=3, pack_length=64, seed=0, epoch=2)
    with pytest.raises(ValueError, match="pack_length"):
        packed_batches([70], rows=1, pack_length=64, seed=0, epoch=0)


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny_model_dir, TINY)
    task = build_task("countdown", {"num_numbers": 3, "num_train": 3, "num_rl": 0, "num_val": 0, "num_test": 0})
    examples = [tokenize_conversation(tok, task.messages(it) + [
        {"role": "assistant", "content": task.reference_solution(it)}]) for it in task.items("train")]
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    packed = collate([examples], tok.pad_token_id)
    with torch.no_grad():
        logits = forward(model, packed).logits[0]
        at = 0
        for e in examples:
            alone = forward(model, collate([[e]], tok.pad_token_id)).logits[0]
            torch.testing.assert_close(logits[at: at + len(e.input_ids)], alone, atol=1e-4, rtol=1e-4)
            at += len(e.input_ids)
    # the first token of every example is not a target: nothing learns to continue a row neighbour
    starts = [0, len(examples[0].input_ids), len(examples[0].input_ids) + len(examples[1].input_ids)]
    assert all(packed["labels"][0, s] == IGNORE for s in starts)
    assert int((packed["labels"] != IGNORE).sum()) == sum(sum(x != IGNORE for x in e.labels[1:]) for e in examples)


@pytest.mark.parametrize("packed", [False, True])
def test_the_fused_head_loss_is_the_models_loss(tiny_model_dir: Path, packed: bool) -> None:
    """sft.fused_head: the loss from the last hidden state at the target tokens only has the value and the
    gradients of the model's own loss over its full logits, on padded rows of different lengths and packed rows."""
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(tiny_model_dir, TINY)
    task = build_task("countdown", {"num_numbers": 3, "num_train": 5, "num_rl": 0, "num_val": 0, "num_test": 0})
    examples = [tokenize_conversation(tok, task.messages(it) + [
        {"role": "assistant", "content": task.reference_solution(it) + " thinking" * (3 * i)}])
        for i, it in enumerate(task.items("train"))]
    batch = collate([examples[:3], examples[3:]] if packed else [[e] for e in examples], tok.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    head = policy_head(model)
    assert head is not None
    results = []
    for h in (None, head):
        model.zero_grad()
        loss, n = sft_loss(model, batch, h)
        loss.backward()
        results.append((loss.detach(), n, {k: p.grad.clone() for k, p in model.named_parameters()}))
    (ref, n_ref, grads_ref), (fused, n_fused, grads_fused) = results
    assert n_ref == n_fused == int((batch["labels"] != IGNORE).sum()) > 0
    torch.testing.assert_close(fused, ref, atol=1e-5, rtol=1e-5)
    for name, g in grads_ref.items():
        torch.testing.assert_close(grads_fused[name], g, atol=1e-5, rtol=1e-4, msg=name)
    assert float(ref) > 0 and any(float(g.abs().sum()) > 0 for g in grads_ref.values())


def test_packed_sft_trains(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    trainer = TrainerConfig(name="cpu", micro_batch_size=2, grad_accum=1, save_every_steps=100)
    run_sft(data, tiny_model_dir, TINY, trainer, SFTConfig(max_steps=12, max_length=256, packing=True, pack_length=512,
                                                           val_fraction=0.15, eval_every_steps=4, optim=OPTIM),
            tmp_path / "sft", tracker, seed=0)
    tracker.finish()
    val = [r["sft/val_loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "sft/val_loss" in r]
    assert val[-1] < val[0] - 0.5, val


def test_the_sft_batch_is_fixed_whatever_the_number_of_ranks() -> None:
    """method.sft.batch_size (SkillFactory's recipe pins the paper's): accumulation = batch / (micro x ranks)."""
    cfg = SFTConfig(batch_size=8)
    assert [cfg.grad_accum(TrainerConfig(micro_batch_size=1), w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert cfg.grad_accum(TrainerConfig(micro_batch_size=2), 2) == 2
    assert SFTConfig().grad_accum(TrainerConfig(grad_accum=3), 4) == 3  # unset: the trainer's
    with pytest.raises(ValueError,
                       match=r"batch_size=8 is not a multiple of trainer.micro_batch_size x ranks = 1 x 16"):
        cfg.grad_accum(TrainerConfig(micro_batch_size=1), 16)


def test_sft_steps_follow_the_batch_size(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=32)
    tracker = Tracker(LoggerConfig(backend="none"), tmp_path, {})
    trainer = TrainerConfig(name="cpu", micro_batch_size=2, grad_accum=1, save_every_steps=100)
    run_sft(data, tiny_model_dir, TINY, trainer, SFTConfig(epochs=1, val_fraction=0.0, batch_size=8), tmp_path / "sft",
            tracker, seed=0)
    tracker.finish()
    logged = read_jsonl(tmp_path / "metrics.jsonl")
    assert next(r["sft/total_steps"] for r in logged if "sft/total_steps" in r) == 32 // 8  # not 32 // 2
