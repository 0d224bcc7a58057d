"""One-way layering (docs/development.md, Layout): no socmap package imports a later stage, and there is no import
cycle.

Every ``import socmap.X`` / ``from socmap.X import ...`` in every module under socmap/ counts, wherever it is
written (module top, inside a function, under ``if TYPE_CHECKING``): a lazy or type-only import upward is still
a dependency upward.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import socmap

ROOT = Path(socmap.__file__).resolve().parent

LAYERS: list[set[str]] = [
    {"config", "errors", "device", "__init__"},
    {"io", "metrics", "layers", "geo"},
    {"data", "eo"},
    {"encoders"},
    {"graph"},
    {"model"},
    {"inference"},
    {"train"},
    {"evaluate"},
    {"mapping"},
    {"aggregate", "tune"},
    {"cli", "demo", "__main__"},
]
"""socmap's top-level modules and packages, lowest first; a unit may import its own layer and those below."""
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _unit(module_path: Path) -> str:
    """The top-level unit of a file: ``socmap/eo/extract.py`` -> ``eo``, ``socmap/cli.py`` -> ``cli``."""
    rel = module_path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level unit) of every ``socmap.X`` import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "socmap":  # from socmap import data
                names = [f"socmap.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            raise AssertionError(f"{path}:{node.lineno}: relative import; socmap uses absolute imports only")
        for name in names:
            parts = name.split(".")
            if parts[0] == "socmap" and len(parts) > 1:
                out.append((node.lineno, parts[1]))
    return out


def _edges() -> dict[str, dict[str, list[str]]]:
    """unit -> imported unit -> ["file:line", ...]."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(ROOT.rglob("*.py")):
        unit = _unit(path)
        for line, target in _imports(path):
            if target != unit:
                edges[unit][target].append(f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {_unit(p) for p in ROOT.rglob("*.py")}
    assert units - set(LEVEL) == set(), "add the new module or package to LAYERS (and to docs/development.md's Layout)"


def test_no_package_imports_a_later_stage() -> None:
    upward = [f"{where}: {unit} (layer {LEVEL[unit]}) imports socmap.{target} (layer {LEVEL[target]})"
              for unit, targets in _edges().items() for target, wheres in targets.items()
              if target in LEVEL and unit in LEVEL and LEVEL[target] > LEVEL[unit] for where in wheres]
    assert upward == []


def test_no_import_cycle() -> None:
    edges = {u: set(t) for u, t in _edges().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                cycle = [*stack[stack.index(v):], v]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for u in sorted(edges):
        if u not in state:
            visit(u)


def _module_name(path: Path) -> str:
    """``socmap/x/y.py`` -> ``socmap.x.y``; ``socmap/x/__init__.py`` -> ``socmap.x``."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """The socmap modules a file imports, wherever the import is written: ``import socmap.x.y`` and
    ``from socmap.x.y import z`` import ``socmap.x.y``, and ``socmap.x.y.z`` too when ``z`` is a submodule."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out & modules


def _module_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules (``[a, b, ..., a]``), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                return [*stack[stack.index(v):], v]
            if v not in state and (found := visit(v)) is not None:
                return found
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state and (found := visit(u)) is not None:
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    """No two modules (``.py`` files; a package's ``__init__.py`` is the package) import each other, directly or
    through others: every module can be read knowing only those it imports."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    edges = {name: _module_imports(p, modules) - {name} for name, p in paths.items()}
    cycle = _module_cycle(edges)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_module_checker_sees_a_cycle(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from socmap.inference import bundle\n    import socmap.io\n")
    got = _module_imports(f, {"socmap.inference", "socmap.inference.bundle", "socmap.io", "socmap.cli"})
    assert got == {"socmap.inference", "socmap.inference.bundle", "socmap.io"}
    assert _module_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _module_cycle({"a": {"b"}, "b": {"c"}, "d": {"a"}}) is None


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from socmap.model.sptgnn import SpTGNN\n    import socmap.io\n")
    assert _imports(f) == [(2, "model"), (3, "io")]


def test_lower_layers_do_not_load_terratorch_or_torch_geometric() -> None:
    code = ("import sys, socmap.data, socmap.eo, socmap.graph; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'terratorch', 'torch_geometric'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT.parent).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("unit", ["mapping", "aggregate", "inference"])
def test_a_trained_model_is_used_through_inference_alone(unit: str) -> None:
    """Mapping and aggregation (and the inference layer itself) read bundles through ``socmap.inference`` and
    import nothing from ``socmap.train``."""
    assert _edges().get(unit, {}).get("train", []) == []


def test_evaluate_uses_train_only_to_retrain() -> None:
    """evaluate imports ``socmap.train`` in one place: the stage that retrains for the block protocol and the
    ablations."""
    wheres = _edges().get("evaluate", {}).get("train", [])
    assert {w.rsplit(":", 1)[0] for w in wheres} <= {"socmap/evaluate/stage.py"}
