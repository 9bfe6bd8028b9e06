"""The code behind each stage's outputs, and the check that a stage's VERSION moves when that code changes.

A stage's outputs are keyed by its inputs record and its `VERSION` (skillexp/stage_cache.py): a change to the code
that alters what a stage writes must bump the VERSION, or a later run reuses outputs the new code would not write.
`code_digest` hashes a stage's module and every skillexp module it imports, directly or not, at any depth and inside
functions too: their syntax trees without docstrings, written back as source (stable across Python versions), so
comments, docs and formatting do not count. Modules that cannot change what a stage writes (logging, progress,
timing, signals, the report) are left out.

`stage_code.json` (committed) holds each stage's VERSION and digest, and, when the code changed without a new
VERSION, why. `tests/test_stage_code.py` fails when a digest moved and the record did not follow. After a change:

    python -m skillexp.stage_code                      # each stage: in step, or what changed
    python -m skillexp.stage_code --accept sft         # after bumping SFTInputs.VERSION
    python -m skillexp.stage_code --accept sft --why "a log line only"   # the VERSION stays: say why
    python -m skillexp.stage_code --accept all --why "..."                # every stage out of step
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RECORD = PACKAGE / "stage_code.json"
# modules whose changes cannot change what a stage writes: how it logs, reports progress, times itself, stops on a
# signal, names user errors, and the report; the registry and the cache's keying (a keying change moves every key);
# the run's schema and start-up checks (a stage reads its record, whose fields are keyed) and data preparation (the
# files a stage reads are keyed by their contents)
NEUTRAL = ("skillexp.tracking", "skillexp.progress", "skillexp.timing", "skillexp.preemption", "skillexp.report",
           "skillexp.user_errors", "skillexp.stages", "skillexp.stage_cache", "skillexp.stage_code",
           "skillexp.config", "skillexp.prepare")


def _file(module: str, root: Path) -> Path | None:
    """The source of `module` (a dotted skillexp name) under `root`, the directory that holds the package."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(tree: ast.AST, package: str) -> set[str]:
    """The `package` modules a syntax tree imports (`import a.b`, `from a.b import c`, where c may be a module)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def closure(module: str, root: Path = PACKAGE.parent, neutral: tuple[str, ...] = NEUTRAL) -> dict[str, Path]:
    """`module` and every module of its package it imports, transitively, by name (neutral ones left out)."""
    package = module.split(".")[0]
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name.startswith(neutral) and name != module:
            continue
        path = _file(name, root)
        if path is None:  # a name imported from a module, not a module
            continue
        seen[name] = path
        parents = [".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)]  # package __init__s
        todo += parents + sorted(_imports(ast.parse(path.read_text()), package))
    return seen


def code_digest(module: str, root: Path = PACKAGE.parent, neutral: tuple[str, ...] = NEUTRAL) -> str:
    """A short hash of the code of `module` and of what it imports (`closure`), docstrings and comments aside."""
    h = hashlib.sha256()
    for name, path in sorted(closure(module, root, neutral).items()):
        h.update(name.encode() + b"\0" + ast.unparse(_strip_docstrings(ast.parse(path.read_text()))).encode() + b"\0")
    return h.hexdigest()[:16]


def current() -> dict[str, dict]:
    """Each registered stage's VERSION and code digest as the checkout has them."""
    from skillexp import stages

    return {name: {"version": stages.get(name).inputs.VERSION, "digest": code_digest(module)}
            for name, module in stages.MODULES.items()}


def problems(recorded: dict[str, dict], now: dict[str, dict]) -> list[str]:
    """What does not agree between the committed record and the code, each with the command that settles it."""
    out = []
    for name, cur in now.items():
        rec = recorded.get(name)
        if rec is None:
            out.append(f"stage {name} has no entry in {RECORD.name}: run `python -m skillexp.stage_code --accept "
                       f"{name}`")
        elif rec["version"] != cur["version"]:
            out.append(f"stage {name}: VERSION {rec['version']} -> {cur['version']}: record it with `python -m "
                       f"skillexp.stage_code --accept {name}`")
        elif rec["digest"] != cur["digest"]:
            out.append(f"stage {name}: its code changed but its VERSION ({cur['version']}) did not: bump the VERSION "
                       f"of its inputs record if the change alters what the stage writes (old outputs would be "
                       f"reused), then `python -m skillexp.stage_code --accept {name}`; if it does not, record why: "
                       f"`python -m skillexp.stage_code --accept {name} --why \"...\"`")
    out += [f"{RECORD.name} names {name}, which is no stage: remove it" for name in sorted(set(recorded) - set(now))]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skillexp.stage_code", description=__doc__.splitlines()[0])
    ap.add_argument("--accept", nargs="+", metavar="STAGE",
                    help="record these stages' VERSION and digest as they are (`all`: every stage out of step)")
    ap.add_argument("--why", help="why the VERSION stays although the code changed (required then)")
    args = ap.parse_args(argv)
    recorded = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    now = current()
    accept = args.accept or []
    if accept == ["all"]:
        accept = [n for n in now if recorded.get(n, {}).get("digest") != now[n]["digest"]
                  or recorded.get(n, {}).get("version") != now[n]["version"]]
    for name in accept:
        if name not in now:
            print(f"no stage {name!r}: one of {sorted(now)}", file=sys.stderr)
            return 2
        same_version = name in recorded and recorded[name]["version"] == now[name]["version"]
        if same_version and recorded[name]["digest"] != now[name]["digest"] and not args.why:
            print(f"stage {name}: the code changed and VERSION {now[name]['version']} did not: bump it, or say why it "
                  f"need not with --why", file=sys.stderr)
            return 2
        recorded[name] = {**now[name], "why": args.why if same_version else f"VERSION {now[name]['version']}"}
    if args.accept:
        RECORD.write_text(json.dumps(dict(sorted(recorded.items())), indent=2) + "\n")
    found = problems(recorded, now)
    for name, cur in now.items():
        print(f"{name:<11} VERSION {cur['version']}  code {cur['digest']}  "
              f"{'in step' if not any(f'stage {name}' in p for p in found) else 'CHANGED'}")
    for p in found:
        print(p, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
