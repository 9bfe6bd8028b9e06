"""The suites' `paper:` blocks quote every row and column the papers print for the models the recipes name, as the
papers print them (spot checks against the papers' text: SkillFactory arXiv 2512.04072, STAT arXiv 2510.10023),
and every average they quote fits its columns or carries a note that says where the paper contradicts itself."""
from __future__ import annotations

from pathlib import Path
from statistics import fmean

import pytest

from skillexp.config import load_run_config
from skillexp.eval.paper import PaperTable
from tests.test_configs import _compose

SF, OT, STAT = "skillfactory", "skillfactory_openthoughts", "stat_math"
Q15, Q7, OLMO = "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct", "olmo-3-7b-instruct"
L3, QW3, L1 = "llama-3.2-3b-instruct", "qwen2.5-3b", "llama-3.2-1b-instruct"
STAT_SFT = ["none", "sft", "math_augment", "math_hard", "embed_sel", "embed_syn", "stat_sel", "stat_syn"]
STAT_ROWS = STAT_SFT + [f"{m} → grpo_stat" for m in STAT_SFT]

# (suite, table) -> model -> the rows the paper prints, in its order, by report row label
ROWS = {
    (SF, "table6"): {
        Q15: ["none", "star", "skillfactory", "distill", "none → grpo", "star → grpo", "skillfactory → grpo",
              "distill → grpo"],
        Q7: ["none", "distill", "skillfactory", "none → grpo", "skillfactory → grpo"],  # Table 8 has no R1 → GRPO
        OLMO: ["none", "distill", "skillfactory", "none → grpo", "distill → grpo", "skillfactory → grpo"]},
    (SF, "table7"): {
        Q15: ["none", "star", "skillfactory", "none → grpo", "star → grpo", "skillfactory → grpo"],
        Q7: ["none", "distill", "skillfactory", "none → grpo", "distill → grpo", "skillfactory → grpo"],
        OLMO: ["none", "distill", "skillfactory", "none → grpo", "distill → grpo", "skillfactory → grpo"]},
    (SF, "table5"): {Q15: ["none", "skillfactory → grpo", "none → grpo [eval.prompt=instruction]",
                           "skillfactory_no_sample_order → grpo", "skillfactory_no_reflections → grpo",
                           "skillfactory_no_prompt_diversity → grpo"]},
    (SF, "table3"): {Q15: ["none → grpo", "distill → grpo", "skillfactory → grpo"]},
    (SF, "table4"): {Q15: ["skillfactory → grpo", "skillfactory_no_sample_order → grpo"]},
    (OT, "table2"): {Q7: ["none → grpo", "skillfactory [method.num_questions=1000] → grpo",
                          "skillfactory [method.num_questions=10000] → grpo", "distill → grpo"]},
    (STAT, "table3"): {L3: STAT_ROWS, QW3: STAT_ROWS, L1: STAT_ROWS},
}
# cells the paper leaves empty, by (suite, table, model, row); every other cell is quoted. "*": every model / row
GAPS = {(SF, "table6", "*", "*"): {"CD3"},  # the training task: the paper reports CD4-CD6 only
        (SF, "table6", Q15, "distill"): {"CD3", "CD4", "CD5", "CD6"},  # Table 1 gives only the Countdown average
        (SF, "table6", Q15, "distill → grpo"): {"CD3", "CD4", "CD5", "CD6"},
        (OT, "table2", Q7, "distill → grpo"): {"GPQA", "AIME25", "AMC", "MATH500"}}  # QwQ: §5.3 gives Overall
# cells read off the papers' text: (suite, table, model, row, column[, measure index]) -> value
SPOT = {
    (SF, "table6", Q7, "distill", "CD4"): 57.8, (SF, "table6", Q7, "skillfactory → grpo", "CD6"): 24.4,
    (SF, "table6", OLMO, "distill → grpo", "CD6"): 37.8, (SF, "table6", Q15, "distill → grpo", "CD avg"): 21.2,
    (SF, "table7", Q7, "none", "Acr4"): 50.4, (SF, "table7", Q7, "none → grpo", "GSM8k"): 5.7,
    (SF, "table7", Q7, "distill → grpo", "M5"): 25.7, (SF, "table7", Q7, "skillfactory", "M2"): 98.6,
    (SF, "table7", OLMO, "none", "CSQA"): 65.9, (SF, "table7", OLMO, "skillfactory → grpo", "LCD4"): 80.8,
    (SF, "table7", OLMO, "distill", "M3"): 63.5, (SF, "table7", OLMO, "none → grpo", "OOD avg"): 67.4,
    (SF, "table5", Q15, "skillfactory_no_prompt_diversity → grpo", "LCD4"): 20.3,
    (SF, "table5", Q15, "none → grpo [eval.prompt=instruction]", "OOD avg"): 25.8,
    (SF, "table3", Q15, "distill → grpo", "Multiplication", 1): 25.1,
    (SF, "table3", Q15, "skillfactory → grpo", "Countdown", 2): 5.3,
    (SF, "table4", Q15, "skillfactory_no_sample_order → grpo", "CD 4arg", 0): 10.65,
    (SF, "table4", Q15, "skillfactory → grpo", "Letter CD 4o", 3): 0.82,
    (OT, "table2", Q7, "skillfactory [method.num_questions=10000] → grpo", "AIME25"): 7.3,
    (OT, "table2", Q7, "distill → grpo", "Overall"): 42.5,
    (STAT, "table3", QW3, "sft → grpo_stat", "MATH2"): 34.8, (STAT, "table3", QW3, "sft → grpo_stat", "Avg"): 45.6,
    (STAT, "table3", L1, "sft → grpo_stat", "AIME24"): 16.7, (STAT, "table3", L1, "sft → grpo_stat", "Avg"): 19.5,
    (STAT, "table3", L3, "embed_syn", "P-h"): 13.3, (STAT, "table3", L3, "none → grpo_stat", "AIME25"): 3.3,
    (STAT, "table3", L1, "math_hard → grpo_stat", "MATHD"): 14.8,
}


def tables(suite: str) -> dict[str, PaperTable]:
    return load_run_config(_compose(["model=tiny", f"eval={suite}"])).eval.paper


@pytest.fixture(scope="module")
def papers(_suite_data: Path) -> dict[str, dict[str, PaperTable]]:
    with pytest.MonkeyPatch.context() as env:  # the suites' data files: the generated stand-ins
        env.setenv("SKILLEXP_DATA_DIR", str(_suite_data))
        return {suite: tables(suite) for suite in (SF, OT, STAT)}


def test_every_row_and_column_the_papers_print_is_quoted(papers) -> None:
    for (suite, name), models in ROWS.items():
        table = papers[suite][name]
        assert list(table.numbers) == list(models), (suite, name)
        columns = [c.name for c in table.columns]
        for model, rows in models.items():
            assert list(table.numbers[model]) == rows, (suite, name, model)
            for row, values in table.numbers[model].items():
                gaps = set().union(*(GAPS.get((suite, name, m, r), set()) for m in (model, "*") for r in (row, "*")))
                cells = [(c, v) for c, value in zip(columns, values)
                         for v in (value if table.measures else [value])]
                assert {c for c, v in cells if v is None} == gaps, (suite, name, model, row)
            assert set(table.names) >= set(rows), f"{suite} {name}: every quoted row has the paper's name"


def test_the_quotes_are_the_papers_numbers(papers) -> None:
    for (suite, name, model, row, column, *measure), value in SPOT.items():
        table = papers[suite][name]
        quoted = table.numbers[model][row][[c.name for c in table.columns].index(column)]
        assert (quoted[measure[0]] if measure else quoted) == value, (suite, name, model, row, column)


def test_every_quoted_average_fits_its_columns_or_the_paper_is_marked(papers) -> None:
    """An average the paper prints agrees with the mean of the cells it prints to rounding (each cell and the
    average are rounded to 0.1: 0.1 at most), or a cell note on that row says where the paper contradicts itself."""
    found = []
    for suite, named in papers.items():
        for name, table in named.items():
            columns = [c.name for c in table.columns]
            for model, rows in table.numbers.items():
                for row, values in rows.items():
                    for i, col in enumerate(table.columns):
                        parts = [values[columns.index(c)] for c in col.average or []]
                        if not parts or values[i] is None or None in parts:
                            continue
                        if abs(fmean(parts) - values[i]) > 0.1 + 1e-9:
                            found.append((suite, name, model, row, col.name))
                            assert any(n.model == model and n.row == row for n in table.cell_notes), found[-1]
    assert len(found) == 3  # STAT Table 3, Llama-3.2-3B: GRPO on the base model, on Embed-Sel and on Embed-Syn


def test_stats_aime25_for_grpo_on_the_base_model_carries_both_values(papers) -> None:
    note, = [n for n in papers[STAT]["table3"].cell_notes if n.row == "none → grpo_stat"]
    assert (note.model, note.column, note.alternative) == (L3, "AIME25", 6.7)
    assert papers[STAT]["table3"].numbers[L3]["none → grpo_stat"][8] == 3.3  # Table 3's value, as printed
