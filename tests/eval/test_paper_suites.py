"""The papers' suites end to end: their CPU twins run as one sweep on the tiny model, offline, against generated
stand-ins for their hub data (skillexp/tasks/standins.py, in SKILLEXP_DATA_DIR), and the report lays each out as its
paper's table."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from skillexp.utils.io import read_jsonl
from tests.conftest import subprocess_env
from tests.test_main import ROOT

SUITES = {"skillfactory_countdown_cpu": ("SkillFactory Table 6", "| method | CD3 | CD4 | CD5 | CD6 | CD avg |"),
          "skillfactory_ood_cpu": ("SkillFactory Table 7", "| method | Acr4 | Acr5 | LCD4 | LCD5 | M2 | M3 | M4 | M5 | "
                                   "CSQA | GSM8k | OOD avg |"),
          "stat_math_cpu": ("STAT Table 3", "| method | MATH | MATHD | MATH2 | GSM8K | AMC23 | P-s | P-h | AIME24 | "
                            "AIME25 | Avg |")}


@pytest.mark.slow
def test_the_papers_suites_run_offline_and_report_as_the_papers_do(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-m", "skillexp", "-m", "model=tiny", "generation=hf", "logger=none", "scoring.workers=0",
         "eval.sampling.max_tokens=8", f"eval={','.join(SUITES)}", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=900, env=subprocess_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert len(list(sweep.glob("*/summary.json"))) == 3
    stat = next(p.parent for p in sweep.glob("*/summary.json") if "stat_math" in (p.parent / "config.yaml").read_text())
    summary = json.loads((stat / "summary.json").read_text())
    # each column its own protocol: pass@1 at T 0.1 (k=1), AMC23 mean@4 and AIME pass@4 (the paper's 64, shrunk)
    assert summary["math/score"] == summary["math/mean@1"] and "math/pass@4" not in summary
    assert summary["amc23/score"] == summary["amc23/mean@4"]
    assert summary["aime24/score"] == summary["aime24/pass@4"] and summary["aime25/num_items"] == 4
    assert len(read_jsonl(stat / "eval" / "generations" / "aime24.jsonl")) == 4 * 4
    assert len(read_jsonl(stat / "eval" / "generations" / "math.jsonl")) == 4
    # MATHD: the base model's difficult questions (the tiny model answers none: all 12 generated ones), then 4 of them
    subset = json.loads((stat / "subset_mathd" / "subset.json").read_text())
    assert (subset["questions"], subset["difficult"], subset["detector"]) == (12, 12, "ground_truth")
    assert summary["mathd/num_items"] == 4 and "mathd/score" in summary
    report = (sweep / "report" / "results.md").read_text()
    for title, header in SUITES.values():
        assert f"### {title}" in report and header in report, report[:3000]
    assert "### SkillFactory Table 5: ablations" in report  # the OOD suite's second table, in Table 7's columns
    assert "The suite quotes no paper numbers for `tiny`." in report
