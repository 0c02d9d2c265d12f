"""Services: the audit trail is on unless ``[audit] enabled = false``, which is said loudly."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omipacs.access.models import AuditEvent
from omipacs.config import AuditSettings, Settings, load
from omipacs.services import Services
from omipacs.web.app import create_app


def _studies(services: Services) -> int:
    """Serve one QIDO-RS request (as the local user) and return its status."""
    return create_app(services).test_client().get("/dicom-web/studies").status_code


def _events(services: Services) -> int:
    with services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_the_audit_trail_is_on_by_default(settings: Settings) -> None:
    assert settings.audit.enabled
    services = Services.create(settings)
    try:
        assert services.audit is not None
        assert _studies(services) == 200
        services.audit.flush()
        assert _events(services) == 1
        (line,) = services.audit.path.read_text().splitlines()
        assert '"user_email":"local"' in line
    finally:
        services.close()


def test_disabling_the_audit_trail_records_nothing_and_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    off = dataclasses.replace(settings, audit=AuditSettings(enabled=False))
    with caplog.at_level(logging.WARNING, logger="omipacs.services"):
        services = Services.create(off)
    try:
        assert services.audit is None
        assert any(
            r.levelno == logging.WARNING and "AUDIT TRAIL DISABLED" in r.getMessage()
            for r in caplog.records
        )
        assert _studies(services) == 200
        assert _events(services) == 0
        assert not (Path(settings.storage.root) / "audit" / "audit.jsonl").exists()
    finally:
        services.close()


def test_the_setting_is_read_from_the_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[audit]\nenabled = false\n")
    assert load(cfg, environ={}).audit.enabled is False
    assert load(cfg, environ={"OMIPACS_AUDIT_ENABLED": "true"}).audit.enabled is True
