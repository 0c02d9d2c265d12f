"""docs/conformance.md is what the code says it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omipacs.conformance.statement import generate
from omipacs.dicom.uids import STORAGE_SOP_CLASSES
from omipacs.query.attributes import ATTRIBUTES

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_committed_statement_matches_the_code() -> None:
    # Fails whenever a table the statement is read from changes without the document
    # being regenerated: `omipacs conformance-statement --write docs/conformance.md`.
    assert DOC.read_text(encoding="utf-8") == generate()


def test_statement_is_read_from_the_tables() -> None:
    text = generate()
    assert all(uid in text for uid in STORAGE_SOP_CLASSES)
    assert all(f"| {a.keyword} |" in text for a in ATTRIBUTES)
    assert "Study Root Query/Retrieve Information Model - MOVE" in text
    assert "| TooManyMatches | 0xA700 |" in text


def test_check_command(tmp_path: Path) -> None:
    stale = tmp_path / "conformance.md"
    stale.write_text(generate().replace("C-GET", "C-GOT"), encoding="utf-8")
    run = [sys.executable, "-m", "omipacs", "conformance-statement", "--check"]
    assert subprocess.run([*run, str(stale)], capture_output=True).returncode == 1
    assert subprocess.run([*run, str(DOC)], capture_output=True).returncode == 0
