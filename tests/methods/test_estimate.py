"""`skillexp teacher estimate` for STAT's family: exact counts where the config fixes the questions, upper bounds
where earlier answers decide, from the config alone (no request, no model)."""
from __future__ import annotations

from skillexp.config import load_run_config
from skillexp.estimate import plan, report
from tests.test_configs import _compose

BASE = ["model=tiny", "teacher=openai", "teacher.base_url=http://127.0.0.1:9/v1", "+task.num_train=40",
        "+task.num_val=10", "method.stat.num_difficult=6", "method.stat.max_missing_skills=2", "method.stat.k=3"]


def _ops(method: str, *extra: str, base: list[str] = BASE) -> dict[str, tuple[int, int]]:
    run = load_run_config(_compose([*base, f"method={method}", *extra]))
    return {p.op: (p.requests, p.replies) for p in plan(run)}


def test_stat_counts_are_exact_or_bounded_by_the_config() -> None:
    assert _ops("stat_sel") == {"label": (40, 40), "judge (at most)": (6, 6), "solve (at most)": (36, 108)}
    assert _ops("stat_syn") == {"label": (40, 40), "judge (at most)": (6, 6), "propose (at most)": (12, 24),
                                "solve (at most)": (24, 72)}
    assert _ops("math_augment") == {"solve": (40, 120)}
    assert _ops("embed_sel") == {"solve (at most)": (30, 90)}  # 6 difficult x 5 neighbours
    assert _ops("embed_syn") == {"propose (at most)": (30, 30), "solve (at most)": (30, 90)}
    assert _ops("stat_sel", "method.stat.answers=reference") == {"label": (40, 40), "judge (at most)": (6, 6)}
    assert _ops("sft") == {}


def test_the_report_prices_each_operation() -> None:
    run = load_run_config(_compose([*BASE, "method=stat_sel"]))
    text = report(run, ["method=stat_sel"], 500)
    assert "gpt-4o-mini" in text and "| label | 40 | 40 | 0 |" in text and "| judge (at most) | 6 | 6 | 0 |" in text
    price = run.teacher.price()
    label = next(p for p in plan(run) if p.op == "label")
    assert f"${price.cost(label.prompt_tokens, 40 * 500):,.2f} |" in text


def test_math_hard_counts_only_its_levels() -> None:
    from skillexp.methods.stat_baselines import level
    from skillexp.tasks import build_task

    hard = [it for it in build_task("math", {"num_train": 100}).items("train") if level(it) in (4, 5)]
    assert 0 < len(hard) < 100
    assert _ops("math_hard", base=[*BASE[:3], "task=math", "+task.num_train=100"]) == {
        "solve": (len(hard), 3 * len(hard))}
