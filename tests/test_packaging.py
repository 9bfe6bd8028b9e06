"""Every third-party package the code imports is declared in setup.cfg, not merely pulled in by another one."""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> dict[str, str]:
    """Top-level module -> the first file importing it, over every module of the package."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "skillexp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += [line for _, value in cfg["options.extras_require"].items() for line in value.splitlines()]
    return {_normalise(re.split(r"[<>=!~\[; ]", line.strip())[0]) for line in lines if line.strip()}


def test_every_imported_package_is_declared() -> None:
    dists = importlib.metadata.packages_distributions()
    stdlib = set(sys.stdlib_module_names) | {"__future__", "skillexp"}
    missing = {}
    for module, where in imported_modules().items():
        if module in stdlib:
            continue
        names = {_normalise(d) for d in dists.get(module, [module])}
        if not names & declared():
            missing[module] = (sorted(names), where)
    assert not missing, f"imported but not declared in setup.cfg (module: distributions, first importer): {missing}"
