"""The command line: import summary, exposure checks, demo."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from omipacs.config import Settings
from omipacs.demo import factory
from tests.conftest import run_cli as run
from tests.conftest import write_config


def test_import_summary_counts_and_reasons(settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "nested").mkdir(parents=True)
    for i in range(3):
        factory.save(factory.make_mammo(rows=32, columns=32, rng=i), src / f"{i}.dcm")
    factory.save(factory.make_mammo(rows=32, columns=32, rng=0), src / "nested" / "dup.dcm")
    (src / "notes.txt").write_text("not dicom")
    (src / "DICOMDIR").write_bytes(b"ignored")
    result = run(settings, tmp_path, "import", "--json", str(src))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == 5
    assert (summary["stored"], summary["already_stored"], summary["rejected"]) == (3, 1, 1)
    assert list(summary["reasons"]) == ["not a DICOM file (no DICM prefix after the preamble)"]
    strict = run(settings, tmp_path, "import", "--strict", str(src))
    assert strict.returncode == 1
    assert "already stored" in strict.stderr


def test_dimse_refuses_public_address_without_allow_list(
    settings: Settings, tmp_path: Path
) -> None:
    exposed = dataclasses.replace(
        settings, dimse=dataclasses.replace(settings.dimse, host="0.0.0.0", peers=())
    )
    result = run(exposed, tmp_path, "serve")
    assert result.returncode == 2
    assert "allow-list" in result.stderr


def test_http_refuses_public_address_without_auth(settings: Settings, tmp_path: Path) -> None:
    exposed = dataclasses.replace(settings, http=dataclasses.replace(settings.http, host="0.0.0.0"))
    result = run(exposed, tmp_path, "serve")
    assert result.returncode == 2
    assert 'mode = "none"' in result.stderr


def test_http_may_listen_anywhere_only_with_tokens(settings: Settings) -> None:
    from omipacs.config import AuthSettings
    from omipacs.errors import ConfigurationError
    from omipacs.web.server import check_exposure

    exposed = dataclasses.replace(settings, http=dataclasses.replace(settings.http, host="0.0.0.0"))
    with pytest.raises(ConfigurationError):
        check_exposure(exposed)
    check_exposure(dataclasses.replace(exposed, auth=AuthSettings(mode="token")))
    check_exposure(settings)  # loopback without tokens: the single-user install


def test_access_administration_commands(settings: Settings, tmp_path: Path) -> None:
    """The contract scripts rely on: --json output with the new IDs and the token."""
    from omipacs.cohorts.models import Cohort
    from omipacs.services import Services

    services = Services.create(settings)
    with services.write_sessions.begin() as s:
        cohort = Cohort(name="c", version=1, definition={}, definition_sha256="0" * 64,
                        members_sha256="0" * 64, client_count=0, study_count=0)
        s.add(cohort)
        s.flush()
        cohort_id = cohort.pk
    services.close()

    def ok(*args: str) -> dict[str, object]:
        result = run(settings, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        assert isinstance(doc, dict)
        return doc

    user = ok("user", "add", "R@Lab.example", "--role", "researcher", "--name", "R", "--json")
    assert isinstance(user["id"], int) and user["email"] == "r@lab.example"
    lic = ok("licence", "create", "--title", "T", "--purpose", "P", "--cohort", str(cohort_id),
             "--scopes", "2d,3d,marks,clinical", "--ends", "2031-01-31",
             "--member", "r@lab.example", "--json")
    assert lic["scopes"] == ["2d", "3d", "marks", "clinical"] and lic["cohort_version"] == 1
    token = ok("token", "create", "--user", "r@lab.example", "--licence", str(lic["id"]),
               "--expires", "2030-01-01", "--json")
    secret = str(token["token"])
    assert secret.startswith("omi_")
    listed = run(settings, tmp_path, "token", "list", "--json")
    assert secret[:12] in listed.stdout and secret not in listed.stdout
    bad = run(settings, tmp_path, "licence", "create", "--title", "T", "--cohort", "999",
              "--scopes", "2d", "--ends", "2031-01-31", "--json")
    assert bad.returncode == 1 and "no such cohort" in bad.stderr
    suspended = ok("licence", "suspend", str(lic["id"]), "--json")
    assert suspended["state"] == "suspended"
    audit = run(settings, tmp_path, "audit", "--json")
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert actions == ["user-add", "licence-create", "token-create", "licence-suspend"]


def test_demo_is_deterministic_and_idempotent(settings: Settings, tmp_path: Path) -> None:
    first = run(settings, tmp_path, "demo", "--clients", "2", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert "stored" in first.stderr
    again = run(settings, tmp_path, "demo", "--clients", "2", "--seed", "5")
    assert again.returncode == 0
    assert "already stored" in again.stderr and " stored" not in again.stderr.replace(
        "already stored", ""
    )


def test_serve_refuses_to_start_without_a_deidentification_key(
    settings: Settings, tmp_path: Path
) -> None:
    keyless = dataclasses.replace(settings, deid=dataclasses.replace(settings.deid, key_file=None))
    config = write_config(keyless, tmp_path / "nokey.toml")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMIPACS_DEID_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "omipacs", "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    assert "no key is configured" in result.stderr


def test_global_options_after_the_subcommand(settings: Settings, tmp_path: Path) -> None:
    config = write_config(settings, tmp_path / "after.toml")
    base = [sys.executable, "-m", "omipacs"]
    after = subprocess.run(
        [*base, "init-db", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert after.returncode == 0, after.stderr
    # rich wraps long paths at the console width: compare without line breaks.
    assert str(settings.storage.root) in after.stderr.replace("\n", "")
    # Before the subcommand still works, and a value there is not lost.
    before = subprocess.run(
        [*base, "--config", str(config), "-v", "init-db"], capture_output=True, text=True,
        timeout=120,
    )
    assert before.returncode == 0
    assert str(settings.storage.root) in before.stderr.replace("\n", "")
    proc = subprocess.Popen(
        [*base, "serve", "--config", str(config), "--no-http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # READY comes within the per-test timeout or the test fails
            lines.append(line)
            if line.strip() == "READY" or proc.poll() is not None:
                break
        assert "READY\n" in lines, "".join(lines)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_demo_is_quiet_and_stats_never_writes(settings: Settings, tmp_path: Path) -> None:
    import hashlib

    demo = run(settings, tmp_path, "demo", "--clients", "2")
    assert demo.returncode == 0, demo.stderr
    assert "highdicom" not in demo.stderr
    assert len(demo.stderr.splitlines()) < 40, demo.stderr
    root = settings.storage.root

    def snapshot() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.iterdir()
            if p.name.startswith("index.sqlite") and p.stat().st_size
        }

    before = snapshot()
    stats = run(settings, tmp_path, "stats", "--format", "json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)
    assert snapshot() == before


def test_a_read_only_engine_refuses_writes(tmp_path: Path, db_url: str) -> None:
    """``omipacs stats``'s engine: the database itself refuses writes, on both backends."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from omipacs.errors import ConfigurationError
    from omipacs.index import db
    from omipacs.services import Services
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, db_url)
    if db_url.startswith("sqlite"):
        with pytest.raises(ConfigurationError, match="no index"):
            db.make_engine(settings.database_url, read_only=True)
    Services.create(settings).close()
    engine = db.make_engine(settings.database_url, read_only=True)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError, match="(?i)read-?only"):
            conn.execute(text("DELETE FROM archive_setting"))
    finally:
        engine.dispose()
