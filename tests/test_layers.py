"""The package's layers: a module imports only from layers below its own, so no two parts import each other and a
part can be read (and tested) without what sits above it. Every import counts, a lazy one inside a function too;
only `if TYPE_CHECKING:` imports (annotations, never run) are exempt. docs/extending.md shows the same table."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "skillexp"
# bottom first; a part may import from any lower layer, never from its own or a higher one
LAYERS = [
    ["skillexp", "utils"],
    ["tasks", "timing", "tracking", "progress", "preemption", "precision"],
    ["models", "stage_cache"],
    ["generation"],
    ["runtime", "traces", "teachers"],
    ["stages"],
    ["training", "eval"],
    ["rl", "methods", "report"],
    ["config", "stage_code"],
    ["pipeline", "prepare", "estimate", "user_errors"],
    ["__main__"],
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The skillexp modules `path` imports, anywhere but under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    exempt = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
              for n in ast.walk(node)}
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in exempt:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), f"{path}: relative import"
    out = set()
    for name in names:
        while name and name not in modules:  # `from skillexp.x import f`: the module x, not f
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_part_imports_only_from_the_layers_below_it() -> None:
    modules = _modules()
    unplaced = sorted({_part(m) for m in modules} - set(LAYER))
    assert not unplaced, f"place {unplaced} in LAYERS (tests/test_layers.py) and in docs/extending.md's table"
    upward = []
    for module, path in modules.items():
        for target in _imports(path, modules):
            a, b = _part(module), _part(target)
            if a != b and LAYER[b] >= LAYER[a]:
                upward.append(f"{module} imports {target} ({b}: layer {LAYER[b]}, {a}: layer {LAYER[a]})")
    assert not upward, "imports from the same or a higher layer:\n" + "\n".join(upward)


def test_no_modules_import_each_other() -> None:
    """Within a part too (a cycle of lazy imports still means neither module can be read alone). A module may
    import its own package's __init__ (Python does so anyway)."""
    modules = _modules()
    graph = {m: {t for t in _imports(p, modules) if t != m and not m.startswith(t + ".")} for m, p in modules.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                stack = path + [m]
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layer_check_sees_lazy_imports_and_skips_annotation_only_ones(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from skillexp.config import RunConfig\n"
                   "def f():\n    from skillexp.pipeline import plan\n    import skillexp.tasks.base\n")
    modules = _modules()
    assert _imports(src, modules) == {"skillexp.pipeline", "skillexp.tasks.base"}


def test_the_extending_page_shows_these_layers_and_names_what_exists() -> None:
    """docs/extending.md's layer table is LAYERS; every `name` it places in a `skillexp/....py` file is defined at
    that file's top level, and every such file exists."""
    page = (ROOT / "docs" / "extending.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", page, re.M)
    assert [re.findall(r"`([^`]+)`", parts) for _, parts in rows] == LAYERS
    assert [int(n) for n, _ in rows] == list(range(len(LAYERS)))
    for path in set(re.findall(r"`(skillexp/[\w/]+\.py)`", page)):
        assert (ROOT / path).is_file(), path
    pairs = re.findall(r"`([A-Za-z_][\w]*)`[^`\n]{1,12}`(skillexp/[\w/]+\.py)`", page)
    assert len(pairs) >= 5
    for name, path in pairs:
        tree = ast.parse((ROOT / path).read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))} | {
            t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        assert name in defined, f"docs/extending.md: {name} is not defined in {path}"
