"""The architecture's import rule: core code never imports Flask or pynetdicom."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
