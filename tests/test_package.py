"""The package as a whole: every module imports, no two modules import each other (directly or
round a longer loop), and the `mindstore` command carries all of its commands."""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import mindstore

ROOT = Path(__file__).resolve().parents[1]
# pyproject.toml's package-dir: mindstore.tui and mindstore.integrations live beside mindstore/.
TREES = {"mindstore": ROOT / "mindstore", "mindstore.tui": ROOT / "tui", "mindstore.integrations": ROOT / "integrations"}
# Third-party modules only an extra installs (pip install 'mindstore[langchain]', '[mcp]'):
# a module of mindstore.integrations may fail to import without them, and nothing else may.
OPTIONAL = {"langchain_core", "langgraph", "mcp"}


def _modules() -> dict[str, Path]:
    """Every module of the package, by dotted name, with its file."""
    out: dict[str, Path] = {}
    for package, folder in TREES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            out[".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The package's modules that ``name`` imports -> the line of the first such import. Every
    import statement counts, at module level or inside a function. ``from pkg import x`` imports
    the module pkg.x when there is one, else pkg; the package of an imported module is not counted
    (it is being imported already, and counting it would make every package that imports its own
    submodules a loop)."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str | None] = []
        if isinstance(node, ast.Import):
            targets = [known(a.name) for a in node.names if a.name.split(".")[0] == "mindstore"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "mindstore":
                source = node.module
            else:
                continue
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else known(source) for a in node.names]
        for target in targets:
            if target is not None and target != name:
                found.setdefault(target, node.lineno)
    return found


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_scan_finds_every_module_the_package_has() -> None:
    walked = {m.name for m in pkgutil.walk_packages(mindstore.__path__, "mindstore.")}
    for package in ("mindstore.tui", "mindstore.integrations"):
        walked |= {package} | {m.name for m in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")}
    assert walked | {"mindstore"} == set(_modules())


def test_every_module_imports() -> None:
    for name in _modules():
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not (name.startswith("mindstore.integrations.") and (exc.name or "").split(".")[0] in OPTIONAL):
                raise


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert any("mindstore.neural.cli" in targets for targets in graph.values())  # the scan sees imports
    loops = [
        [f"{a} (line {graph[a][b]}) -> {b}" for a in component for b in component if b in graph[a]]
        for component in _cycles(graph)
    ]
    assert not loops, "modules that import each other, directly or round a loop:\n" + "\n".join(map(str, loops))


def test_help_lists_the_neural_commands() -> None:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "mindstore.cli", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = {line.strip(" │|").split()[0] for line in out.stdout.splitlines() if line.strip(" │|")}
    assert {"train", "evaluate", "bind", "recall", "add", "search"} <= listed, out.stdout
