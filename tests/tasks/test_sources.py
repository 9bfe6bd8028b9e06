"""Where tasks' rows come from: local files, shipped sets, and hub datasets prepared beforehand (never the hub at run
time). The hub is never reached here: `prepare` is run against an in-memory `datasets.Dataset`."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from datetime import datetime
from pathlib import Path

import pytest

from skillexp.tasks import build_task
from skillexp.tasks.math import SHIPPED
from skillexp.tasks.sources import (PROJECT_DIR, MissingData, data_dir, fingerprint, is_hub, prepare, prepared_file,
                                    read_rows, source_file)

ROWS = [{"problem": f"What is {i} + 1?", "answer": str(i + 1), "subject": "Arithmetic", "level": 1} for i in range(8)]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_data_dir_from_the_environment_or_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SKILLEXP_DATA_DIR", raising=False)
    assert data_dir() == PROJECT_DIR / "data" and (PROJECT_DIR / "skillexp" / "tasks" / "sources.py").is_file()
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert prepared_file("openai/gsm8k", "main", "test") == tmp_path / "openai__gsm8k__main__test.jsonl"


def test_hub_names_and_local_paths(tmp_path: Path) -> None:
    assert is_hub("openai/gsm8k") and is_hub("tau/commonsense_qa") and is_hub("gsm8k")
    assert not is_hub(str(tmp_path))  # an existing directory is local
    assert not is_hub(str(tmp_path / "missing.jsonl")) and not is_hub("data/gpqa_diamond.parquet")
    assert not is_hub("x.json") and not is_hub("x.csv")


def test_prepared_file_names_are_safe_and_distinct(tmp_path: Path) -> None:
    assert prepared_file("openai/gsm8k", "main", "test", tmp_path) == tmp_path / "openai__gsm8k__main__test.jsonl"
    assert prepared_file("tau/commonsense_qa", None, "validation", tmp_path).name == (
        "tau__commonsense_qa__default__validation.jsonl")
    odd = [("a/b", None, "test"), ("a__b", None, "test"), ("a/b", "x y", "test"), ("a/b", "x_y", "test"),
           ("a/b", None, "test[:10]"), ("a/b", "..", "test"), ("a/b", None, "train/../../etc")]
    files = [prepared_file(*args, root=tmp_path) for args in odd]
    assert len(set(files)) == len(files)
    assert all(f.parent == tmp_path and f.suffix == ".jsonl" and "/" not in f.name for f in files)


def test_read_rows_from_jsonl_parquet_and_the_default(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.jsonl"
    raw = json.dumps({"problem": "a\u2028b\x85c", "answer": "1"}, ensure_ascii=False)  # line breaks to splitlines
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + raw + "\r\n", encoding="utf-8")
    rows = read_rows(str(path), None, "test", None, "the test task")
    assert rows == [(f"{path}:1", ROWS[0]), (f"{path}:3", {"problem": "a\u2028b\x85c", "answer": "1"})]
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "rows.parquet")
    rows = read_rows(str(tmp_path / "rows.parquet"), None, "test", None, "the test task")
    assert [r for _, r in rows] == ROWS and rows[2][0] == f"{tmp_path / 'rows.parquet'} row 3"
    shipped = read_rows(None, None, "test", SHIPPED, "the math task")
    assert shipped[0][0] == f"{SHIPPED}:1" and len(shipped) >= 400
    with pytest.raises(ValueError, match="no default set"):
        read_rows(None, None, "test", None, "the test task")


@pytest.mark.parametrize("name, content, error, message", [
    ("bad.jsonl", b'{"a": 1}\n\xff\xfe\n', ValueError, r"bad.jsonl: byte 9 is not UTF-8 text; the gsm8k task reads"),
    ("bad.jsonl", b'{"a": 1}\n{"a": \n', ValueError, r"bad.jsonl:2: not valid JSON \(.*column 7\)"),
    ("bad.jsonl", b'{"a": 1}\n[1, 2]\n', ValueError, r"bad.jsonl:2: a JSON list, not an object"),
    ("empty.jsonl", b"\n\n", ValueError, r"empty.jsonl holds no rows; the gsm8k task reads"),
    ("bad.parquet", b"not parquet", ValueError, r"bad.parquet: not a readable parquet file .* the gsm8k task"),
    ("rows.csv", b"a,b\n1,2\n", FileNotFoundError, r"the gsm8k task: .*rows.csv is not a .jsonl or .parquet file"),
    (None, None, FileNotFoundError, r"the gsm8k task: .*missing.jsonl does not exist; give a .jsonl file"),
])
def test_read_rows_errors_name_the_file_line_and_task(tmp_path: Path, name: str | None, content: bytes | None,
                                                      error: type, message: str) -> None:
    path = tmp_path / (name or "missing.jsonl")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        read_rows(str(path), None, "test", None, "the gsm8k task")


def test_an_unprepared_hub_dataset_fails_with_the_prepare_command(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingData) as raised:
        read_rows("someorg/mathset", "main", "test", None, "the math task")
    e = raised.value
    assert isinstance(e, FileNotFoundError) and e.file == tmp_path / "someorg__mathset__main__test.jsonl"
    assert "someorg/mathset" in e.source and "main" in e.source and "test" in e.source
    assert f"skillexp data prepare <eval suite> --out {tmp_path}" in str(e) and "paths.data_dir" in str(e)
    again = pickle.loads(pickle.dumps(e))  # crosses process boundaries intact
    assert (type(again), again.source, again.file, str(again)) == (MissingData, e.source, e.file, str(e))
    math = build_task("math", {"path": "someorg/mathset", "hf_config": "main"})
    assert math.data_files() == [e.file]
    with pytest.raises(MissingData):  # at start-up, not when the first eval reaches it
        math.check_source()
    _jsonl(e.file, ROWS)  # once prepared, it is a local file like any other
    assert read_rows("someorg/mathset", "main", "test", None, "the math task")[0] == (f"{e.file}:1", ROWS[0])
    math.check_source()
    assert len(math.items("test")) == 8


def test_prepare_round_trip_and_manifest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import datasets

    rows = [{"question": f"Q{i} ünïcode", "choices": {"label": ["A", "B"], "text": ["x", "y"]}, "answerKey": "B",
             "when": datetime(2024, 1, i + 1), "score": 0.5 * i, "ok": i % 2 == 0, "none": None} for i in range(5)]
    calls = []

    def load_dataset(path: str, config: str | None = None, *, split: str, revision: str | None = None):
        calls.append((path, config, split, revision))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    out = tmp_path / "prepared"
    file = prepare("tau/commonsense_qa", None, "validation", out)
    assert calls == [("tau/commonsense_qa", None, "validation", None)]
    assert file == prepared_file("tau/commonsense_qa", None, "validation", out) and file.is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind
    manifest = json.loads(file.with_suffix(".json").read_text())
    assert manifest["source"] == {"path": "tau/commonsense_qa", "config": None, "split": "validation"}
    assert manifest["rows"] == 5 and manifest["fingerprint"]
    assert manifest["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest() == fingerprint(file)
    assert datetime.fromisoformat(manifest["prepared_at"]).utcoffset().total_seconds() == 0
    monkeypatch.setenv("SKILLEXP_DATA_DIR", str(out))
    read = [r for _, r in read_rows("tau/commonsense_qa", None, "validation", None, "the multiple_choice task")]
    assert read[1] == {**rows[1], "when": str(rows[1]["when"])}  # a value JSON cannot hold is written as text
    assert source_file("tau/commonsense_qa", None, "validation", None) == file


def test_fingerprint_follows_the_content(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "rows.jsonl", ROWS)
    first = fingerprint(path)
    assert first == hashlib.sha256(path.read_bytes()).hexdigest() and fingerprint(path) == first
    assert fingerprint(tmp_path / "." / "rows.jsonl") == first  # keyed on the resolved path
    stat = path.stat()
    path.write_bytes(path.read_bytes().replace(b"What", b"Whot"))  # same size, in place
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = fingerprint(path)
    assert second != first and second == hashlib.sha256(path.read_bytes()).hexdigest()
    _jsonl(path, ROWS[:3])
    assert fingerprint(path) not in (first, second)


def test_data_files_hook() -> None:
    assert build_task("countdown", {}).data_files() == []
    assert build_task("multiplication", {}).data_files() == []
    assert build_task("math", {}).data_files() == [SHIPPED]
    assert build_task("math", {"path": "mine.jsonl"}).data_files() == [Path("mine.jsonl")]
