"""`skillexp data prepare` checks each downloaded table against the fields its task reads before anything is
written: the first real download must not be where a guessed field name fails, minutes into a GPU job. The
stand-ins are tables written by `datasets`' own JSON-lines writer and read by the real `load_dataset` (only the
hub name's resolution to their directory is ours: nothing here reaches the hub)."""
from __future__ import annotations

from pathlib import Path

import pytest

from skillexp.prepare import main
from skillexp.tasks.sources import prepared_file


def _stand_in(tmp_path: Path, rows: list[dict], monkeypatch: pytest.MonkeyPatch) -> str:
    """The hub name `org/mathset`, whose download `datasets.load_dataset` reads from a directory holding a test
    split written by datasets itself (the real loader and JSON builder; only the name's resolution is ours)."""
    import datasets

    root = tmp_path / "hub"
    (root / "org" / "mathset").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_json(str(root / "org" / "mathset" / "test.jsonl"))
    real = datasets.load_dataset

    def load_dataset(path: str, config: str | None = None, *, split: str, revision: str | None = None):
        return real(str(root / path), config, split=split, revision=revision)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return "org/mathset"


ROWS = [{"problem": f"What is {i} + {i}?", "solution": f"It is $\\boxed{{{2 * i}}}$."} for i in range(6)]


def test_a_table_with_the_fields_the_task_reads_is_written(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    hub = _stand_in(tmp_path, ROWS, monkeypatch)
    out = tmp_path / "prepared"
    args = ["prepare", "task=math", f"task.path={hub}", "task.question_field=problem", "task.answer_field=solution",
            "+task.num_test=-1", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    file = prepared_file(hub, None, "test", out)
    assert file.is_file() and file.with_suffix(".json").is_file()
    assert not (out / ".staging").exists()
    assert f"wrote {file}" in capsys.readouterr().out


@pytest.mark.parametrize(("fields", "key"), [({"problem": "question_field"}, "question_field"),
                                             ({"solution": "answer_field"}, "answer_field")])
def test_a_table_whose_fields_differ_is_refused_naming_what_it_has_and_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, fields: dict[str, str],
        key: str) -> None:
    """The suite's guess of a field name is wrong for this table: nothing is written, and the message names the
    fields the table has and the config key to set (as the eval suite names it)."""
    renamed = [{("text" if k in fields else k): v for k, v in row.items()} for row in ROWS]
    hub = _stand_in(tmp_path, renamed, monkeypatch)
    out = tmp_path / "prepared"
    args = ["prepare", "task=math", f"task.path={hub}", "task.question_field=problem", "task.answer_field=solution",
            "+task.num_test=-1", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the downloaded table does not have what the task reads" in err
    assert "its fields: [" in err and "'text'" in err and f"set task.{key} to the field that holds it" in err, err
    assert not prepared_file(hub, None, "test", out).exists() and not (out / ".staging").exists()
