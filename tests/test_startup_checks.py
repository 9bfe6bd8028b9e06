"""Bad inputs fail at start-up, before any model, engine or W&B run starts, with the file, the line and the fix:
data files a run will read, and a STAT method without a usable teacher (issue 13, case 4)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from skillexp.config import load_run_config
from skillexp.utils.schema import ConfigError
from tests.test_configs import _compose

GOOD = {"problem": "What is $1+1$?", "answer": "2"}


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


CASES = [
    ("broken.jsonl", [GOOD, '{"problem": "x", "answer": '], ":2: not valid JSON"),
    ("no_answer.jsonl", [GOOD, GOOD, {"problem": "What is 2?"}], ":3: the row has no 'answer' field"),
    ("empty.jsonl", [], "holds no rows"),
    ("list.jsonl", [GOOD, [1, 2]], ":2: a JSON list, not an object"),
    ("bytes.jsonl", os.urandom(64) + b"\xff\xfe", "is not UTF-8 text"),
    ("bytes.parquet", os.urandom(64), "not a readable parquet file"),
    ("weights.bin", b"\x00" * 16, "is not a .jsonl or .parquet file"),
    ("missing.jsonl", None, "missing.jsonl does not exist"),
]


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_data_file_fails_at_start_up_naming_the_file_line_and_fix(
        name: str, content: object, expected: str, tmp_path: Path) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, list):
        _jsonl(path, content)
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(["task=math", "eval=math", f"task.path={path}"]))
    message = str(e.value)
    assert message.startswith("task: ") and expected in message and str(tmp_path) in message, message


def test_a_wrong_field_name_says_which_setting_to_change(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "q.jsonl", [{"question": "What is 2?", "answer": "2"}])
    with pytest.raises(ConfigError, match=r"q.jsonl:1: the row has no 'problem' field .*task.question_field"):
        load_run_config(_compose(["task=math", "eval=math", f"task.path={path}"]))
    load_run_config(_compose(["task=math", "eval=math", f"task.path={path}", "task.question_field=question"]))


def test_stat_without_a_usable_teacher_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="method=stat_sel needs a teacher: add teacher=oracle"):
        load_run_config(_compose(["method=stat_sel"]))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"\$OPENAI_API_KEY is not set"):
        load_run_config(_compose(["method=stat_syn", "teacher=openai"]))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder")
    load_run_config(_compose(["method=stat_syn", "teacher=openai"]))
    load_run_config(_compose(["method=sft", "teacher=none"]))  # methods without a teacher need none


CATALOGUES = [
    ("missing.json", None, "missing.json does not exist"),
    ("broken.json", b'{"subjects": {"algebra": ["x",\n', "line 2: not JSON"),
    ("bytes.json", b"\xff\xfe\x00" + os.urandom(32), "is not UTF-8 text"),
    ("shape.json", b'{"subjects": ["x"]}', "expected {\"subjects\""),
    ("empty.json", b'{"subjects": {}}', "needs at least one subject"),
]


@pytest.mark.parametrize(("name", "content", "expected"), CATALOGUES, ids=[c[0] for c in CATALOGUES])
def test_a_bad_skill_catalogue_fails_at_start_up(name: str, content: bytes | None, expected: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(["method=stat_sel", "teacher=oracle", f"method.stat.catalogue={path}"]))
    message = str(e.value)
    assert message.startswith("method.stat.catalogue: skill catalogue ") and expected in message, message
    assert str(path) in message


def test_an_unprepared_hub_dataset_fails_at_start_up_with_the_command_that_prepares_it(tmp_path: Path) -> None:
    """Runs never read the hub: a suite whose hub data is not in paths.data_dir stops before any model loads, with
    the `skillexp data prepare` command (the run's own overrides) and the directory."""
    with pytest.raises(ConfigError) as e:
        load_run_config(_compose(["model=tiny", "eval=skillfactory_ood_cpu", f"paths.data_dir={tmp_path}"]))
    message = str(e.value)
    assert "eval.variants.commonsense_qa: the hub dataset tau/commonsense_qa" in message
    assert f"skillexp data prepare model=tiny eval=skillfactory_ood_cpu --out {tmp_path}" in message


def test_a_prepared_file_with_a_bad_row_names_its_line(tmp_path: Path) -> None:
    from skillexp.tasks.sources import prepared_file

    _jsonl(prepared_file("openai/gsm8k", "main", "test", tmp_path),
           [{"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"}, {"question": "2 + 2?", "answer": "four"}])
    with pytest.raises(ConfigError, match=r"openai__gsm8k__main__test.jsonl:2"):
        load_run_config(_compose(["model=tiny", f"paths.data_dir={tmp_path}", "+eval.variants.gsm8k={kind: gsm8k}"]))
