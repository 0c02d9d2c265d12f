"""The architecture's import rule: core code never imports Flask or pynetdicom."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import omipacs

#: Entry points; the conformance package is a client of both doors (and documents them).
ADAPTERS = (
    "omipacs.web",
    "omipacs.dimse",
    "omipacs.cli",
    "omipacs.__main__",
    "omipacs.conformance",
)


def core_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(omipacs.__path__, "omipacs.")]
    return [n for n in names if not n.startswith(ADAPTERS) and ".migrations" not in n]


def test_core_imports_neither_flask_nor_pynetdicom() -> None:
    modules = core_modules()
    assert "omipacs.ingest.pipeline" in modules and "omipacs.index.models" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'pynetdicom'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


#: The packages from the bottom up: each may import only its own layer's modules and
#: those of the layers below it. A package not listed here must still be in no import
#: cycle (:func:`test_no_package_imports_back_up`).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "filemodes", "children"),
    ("config",),
    ("dicom",),
    ("index", "blobs", "deid"),
    ("query", "ingest"),
    ("retrieve",),
    ("clinical",),
    ("annotations",),
    ("cohorts",),
    ("access",),
    ("services",),
    ("schema", "bootstrap", "integrity", "withdrawal", "export"),
    ("demo",),
    (
        "web",
        "dimse",
        "cli",
        "cli_dimse",
        "access_cli",
        "release_cli",
        "cli_changes",
        "conformance",
        "__main__",
    ),
)


def package_imports() -> dict[str, set[str]]:
    """Top-level ``omipacs`` package → the other top-level packages it imports
    (anywhere in its modules, function-local imports included)."""
    root = Path(omipacs.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if "migrations" in rel.parts:
            continue
        package = rel.parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        targets = graph.setdefault(package, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "omipacs" and len(parts) > 1 and parts[1] != package:
                    targets.add(parts[1])
    return graph


def test_no_package_imports_back_up() -> None:
    graph = package_imports()
    assert {"clinical", "annotations", "cohorts", "access"} <= graph.keys()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted(
        f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a)
    )
    assert cycles == []


def test_packages_import_only_the_layers_below() -> None:
    layer_of = {name: n for n, layer in enumerate(LAYERS) for name in layer}
    upward = sorted(
        f"{a} (layer {layer_of[a]}) imports {b} (layer {layer_of[b]})"
        for a, targets in package_imports().items()
        for b in targets
        if a in layer_of and b in layer_of and layer_of[b] > layer_of[a]
    )
    assert upward == []
