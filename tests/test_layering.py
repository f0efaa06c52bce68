"""Layering: architectures < models < inference. Lower layers never import higher ones, and the
inference modules import each other without cycles (function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vsrt"


def module_names(package: str) -> list[str]:
    folder = PACKAGE.joinpath(*package.split(".")[1:])
    return sorted(f"{package}.{p.relative_to(folder).with_suffix('').as_posix().replace('/', '.')}".removesuffix(
        ".__init__") for p in folder.rglob("*.py"))


LAYERS = [("vsrt.archs", ("vsrt.inference", "vsrt.models", "vsrt.data")), ("vsrt.models", ("vsrt.inference",))]


def test_a_lower_layer_imports_no_higher_one():
    """In a fresh interpreter, every module of vsrt.archs and then of vsrt.models is imported; none may
    load a module of a higher layer (one interpreter for both: importing torch dominates the time)."""
    layers = [(module_names(package), forbidden) for package, forbidden in LAYERS]
    assert all(len(modules) > 3 for modules, _ in layers)
    code = ("import importlib, sys\n"
            f"for modules, forbidden in {layers!r}:\n"
            "    for name in modules:\n"
            "        importlib.import_module(name)\n"
            "        loaded = sorted(m for m in sys.modules if m.startswith(forbidden))\n"
            "        if loaded:\n"
            "            sys.exit(f'importing {name} loaded {loaded}')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def imported_modules(path: Path, package: str) -> set[str]:
    """``package.*`` modules that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith(package + ".")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_inference_modules_import_each_other_without_cycles():
    package = "vsrt.inference"
    graph = {name: imported_modules(PACKAGE / "inference" / f"{name.rsplit('.', 1)[1]}.py", package)
             for name in module_names(package) if name != package}
    assert "vsrt.inference.interpolate" not in graph["vsrt.inference.streaming"]
    assert "vsrt.inference.upscale" not in graph["vsrt.inference.interpolate"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the checker sees cycles
