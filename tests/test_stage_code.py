"""A stage's VERSION moves with the code behind its outputs (skillexp/stage_code.py): the committed record is in
step with the checkout, and the digest sees a change of code but not of docs, comments or neutral modules."""
from __future__ import annotations

import json
from pathlib import Path

from skillexp.stage_code import RECORD, closure, code_digest, current, main, problems


def test_every_stage_is_in_step_with_its_recorded_version() -> None:
    found = problems(json.loads(RECORD.read_text()), current())
    assert not found, "\n".join(found)


def _package(root: Path, helper: str) -> None:
    (root / "pkgx" / "sub").mkdir(parents=True, exist_ok=True)
    files = {"__init__.py": "", "sub/__init__.py": "", "log.py": "def say():\n    print('hi')\n",
             "stage.py": "import pkgx.log\n\n\ndef run():\n    from pkgx.sub import helper\n    return helper.f()\n",
             "sub/helper.py": helper}
    for name, text in files.items():
        (root / "pkgx" / name).write_text(text)


def test_the_digest_follows_code_and_not_docs_comments_or_neutral_modules(tmp_path: Path) -> None:
    def digest(helper: str) -> str:
        _package(tmp_path, helper)
        return code_digest("pkgx.stage", tmp_path, neutral=("pkgx.log",))

    base = digest("def f():\n    return 1\n")
    assert set(closure("pkgx.stage", tmp_path, neutral=("pkgx.log",))) == {"pkgx.stage", "pkgx.sub",
                                                                           "pkgx.sub.helper"}  # a lazy import too
    assert digest('def f():\n    """Docs."""\n    # a comment\n    return 1  # another\n') == base
    assert digest("def f():\n    return 2\n") != base
    digest("def f():\n    return 1\n")
    (tmp_path / "pkgx" / "log.py").write_text("def say():\n    print('bye')\n")
    assert code_digest("pkgx.stage", tmp_path, neutral=("pkgx.log",)) == base


def test_what_is_out_of_step_is_told_with_the_command_that_settles_it() -> None:
    changed = problems({"sft": {"version": 2, "digest": "a"}}, {"sft": {"version": 2, "digest": "b"}})
    assert len(changed) == 1 and "bump the VERSION" in changed[0] and "--why" in changed[0]
    bumped = problems({"sft": {"version": 2, "digest": "a"}}, {"sft": {"version": 3, "digest": "b"}})
    assert "VERSION 2 -> 3" in bumped[0] and "--accept sft" in bumped[0]
    assert "no entry" in problems({}, {"rl": {"version": 4, "digest": "c"}})[0]
    assert "which is no stage" in problems({"old": {"version": 1, "digest": "d"}}, {})[0]


def test_accepting_a_changed_stage_without_a_new_version_needs_a_reason(tmp_path: Path, monkeypatch) -> None:
    import skillexp.stage_code as sc

    record = tmp_path / "stage_code.json"
    now = current()
    record.write_text(json.dumps({**now, "eval": {**now["eval"], "digest": "0" * 16}}))
    monkeypatch.setattr(sc, "RECORD", record)
    assert main(["--accept", "eval"]) == 2  # no --why: refused, nothing written
    assert json.loads(record.read_text())["eval"]["digest"] == "0" * 16
    assert main(["--accept", "eval", "--why", "a log line only"]) == 0
    assert json.loads(record.read_text())["eval"] == {**now["eval"], "why": "a log line only"}
