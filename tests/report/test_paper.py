"""The paper-layout table: the suite's columns in the paper's order, averages per run then over seeds, and the
paper's numbers for the runs' model beside ours with the difference, checked against hand-computed values."""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from skillexp.config import load_run_config
from skillexp.report.cli import main
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose

SUITE = "skillfactory_countdown_cpu"
CD = ["countdown_3", "countdown_4", "countdown_5", "countdown_6"]


def write_run(run_dir: Path, method: str, rl: str, seed: int, scores: list[float], model: str) -> None:
    run = load_run_config(_compose(["model=tiny", f"model.name={model}", f"eval={SUITE}", f"method={method}",
                                    f"rl={rl}", f"seed={seed}"]))
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(asdict(run))))
    summary = {f"{v}/{m}": s for v, s in zip(CD, scores) for m in ("score", "mean@2", "pass@1")}
    summary["avg/score"] = sum(scores) / len(scores)
    (run_dir / "metrics.jsonl").write_text(json.dumps({"step": None, **summary}) + "\n")
    (run_dir / "summary.json").write_text(json.dumps(summary))


def test_the_paper_table_puts_the_papers_numbers_beside_ours(tmp_path: Path, capsys) -> None:
    model = "qwen2.5-1.5b-instruct"
    write_run(tmp_path / "0", "none", "none", 0, [0.50, 0.10, 0.02, 0.00], model)
    write_run(tmp_path / "1", "none", "none", 1, [0.30, 0.05, 0.04, 0.03], model)
    assert main([str(tmp_path), "--wandb", "off"]) == 0
    md = (tmp_path / "report" / "results.md").read_text()
    assert ("### SkillFactory Table 6 (Qwen2.5-7B: Table 8, Olmo-3-7B: 10): Countdown accuracy % (mean of 4 samples)"
            in md)
    assert "| method | paper's row | CD3 | CD4 | CD5 | CD6 | CD avg |" in md
    row = next(line for line in md.splitlines() if line.startswith("| none |") and "paper" in line)
    cells = [c.strip() for c in row.strip("|").split("|")][2:]
    # CD3: 50 and 30 -> 40.0 ± 14.1, no paper number; CD4: 10 and 5 -> 7.5 ± 3.5 vs the paper's 3.3
    assert cells[0] == "40.0 ± 14.1"
    assert cells[1] == "7.5 ± 3.5 · paper 3.3 (+4.2)"
    # CD avg per run over CD4-6 (4.0 and 4.0), then over seeds; the paper's 1.9
    assert cells[4] == "4.0 ± 0.0 · paper 1.9 (+2.1)"
    # under every paper table, where to read how the recipe differs from the paper
    table = md.split("### SkillFactory Table 6")[1].split("\n### ")[0]
    assert "differs from the paper's, and where the paper is silent: docs/fidelity.md" in table


def test_the_fidelity_page_lists_both_papers_and_the_docs_claim_no_more_than_the_code() -> None:
    """docs/fidelity.md has a table per paper; the docs do not claim the paper's decoding where it states none,
    a Countdown range the paper does not give, or every cell of tables whose cells are not all quoted."""
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "fidelity.md").read_text()
    assert "## SkillFactory (arXiv 2512.04072)" in page and "## STAT (arXiv 2510.10023)" in page
    assert page.count("| item | paper | ours | why | could move |") == 2
    texts = "".join(p.read_text() for p in [*root.glob("docs/*.md"), *root.glob("skillexp/**/*.py"),
                                            *root.glob("conf/**/*.yaml")])
    for claim in ("(the paper's decoding)", "as in the paper's\nCountdown data", "as in the paper's Countdown",
                  "(the rows and columns the paper gives)"):
        assert claim not in texts, claim


def test_a_model_the_paper_did_not_run_gets_our_numbers_alone(tmp_path: Path) -> None:
    write_run(tmp_path / "0", "none", "none", 0, [0.5, 0.25, 0.0, 0.0], "tiny")
    assert main([str(tmp_path), "--wandb", "off"]) == 0
    md = (tmp_path / "report" / "results.md").read_text()
    assert "| none | 50.0 | 25.0 | 0.0 | 0.0 | 8.3 |" in md
    assert "The suite quotes no paper numbers for `tiny`." in md


@pytest.mark.parametrize("override, expected", [
    ("eval.paper.table6.columns=[{name: X, variant: nope}]", "variant 'nope' is not in eval.variants"),
    ("eval.paper.table6.columns=[{name: X, average: [Y]}]", "average names ['Y'], which are not earlier columns"),
    ("eval.paper.table6.columns=[{name: X, variant: countdown_3, average: [Y]}]", "only one of them"),
    ("+eval.paper.table6.numbers.tiny.none=[1.0]", "has 1 values for 5 columns"),
    ("eval.paper.table6.columns=[{name: X, variants: [countdown_3, nope]}]", "variant 'nope' is not in eval.variants"),
    ("eval.paper.table6.columns=[{name: X}, {name: X}]", "a second column named 'X'"),
    ("+eval.paper.table6.measures=[{name: Std}]", "give `metric`"),
    ("+eval.paper.table6.measures=[{name: A, metric: mean@k}, {name: D, difference: [A, B]}]",
     "difference must name two earlier measures (['A'])"),
    ("+eval.paper.table6.measures=[{name: A, metric: mean@k}]", "column 'CD3' needs a list of 1 values"),
    ("+eval.paper.table6.names={nobody: Someone}", "names has ['nobody'], which no model's numbers quote"),
    ("eval.paper.table6.cell_notes=[{model: tiny, row: none, column: CD4, note: x}]", "model='tiny' has no numbers"),
    ("eval.paper.table6.cell_notes=[{model: qwen2.5-7b-instruct, row: star, column: CD4, note: x}]",
     "row='star' is not quoted for qwen2.5-7b-instruct"),
    ("eval.paper.table6.cell_notes=[{model: qwen2.5-7b-instruct, row: none, column: CD9, note: x}]",
     "column='CD9' is not a column"),
    *[(("~eval.paper.table6.requires", f"+eval.paper.table6.requires={{{key}: {value}}}"), expected)
      for key, value, expected in [
          ("budget_forcing.enable", "true", "'budget_forcing.enable' is not an eval setting"),
          ("budget_forcing", "true", "'budget_forcing' is a group of settings"),
          ("budget_forcing.enabled", "3", "=3 is not a bool like eval.budget_forcing.enabled")]],
])
def test_a_wrong_paper_block_fails_at_start_up(override: str | tuple[str, ...], expected: str) -> None:
    overrides = list(override) if isinstance(override, tuple) else [override]
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_run_config(_compose(["model=tiny", f"eval={SUITE}", *overrides]))
