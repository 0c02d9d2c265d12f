"""Who may read the change feed and withdraw a client: the one access check decides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omipacs.access import admin
from omipacs.access.audit import query_events
from omipacs.bootstrap import open_archive
from omipacs.config import AuthSettings
from omipacs.web.app import create_app
from tests.conftest import make_settings


def test_feed_for_admins_and_curators_withdrawals_for_admins(tmp_path: Path) -> None:
    settings = dataclasses.replace(make_settings(tmp_path), auth=AuthSettings(mode="token"))
    services = open_archive(settings)
    try:
        tokens = {}
        with services.write_sessions.begin() as s:
            for role in ("admin", "curator", "researcher"):
                admin.add_user(s, f"{role}@a.example", role)
                tokens[role], _ = admin.create_token(s, f"{role}@a.example")
        client = create_app(services).test_client()

        def call(method: str, path: str, who: str | None, **kw: object) -> int:
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            return int(client.open(path, method=method, headers=headers, **kw).status_code)

        assert call("GET", "/api/v1/changes", "admin") == 200
        assert call("GET", "/api/v1/changes", "curator") == 200
        assert call("GET", "/api/v1/changes", "researcher") == 403
        assert call("GET", "/api/v1/changes", None) == 401
        body = {"json": {"client_id": "OPTMAAAAAAAAAAAA"}}
        assert call("POST", "/api/v1/withdrawals", "curator", **body) == 403
        assert call("POST", "/api/v1/withdrawals", "researcher", **body) == 403
        assert call("POST", "/api/v1/withdrawals", "admin", **body) == 404  # unknown client
        assert call("GET", "/api/v1/withdrawals", "curator") == 403
        assert call("GET", "/api/v1/withdrawals", "admin") == 200
        assert services.audit is not None
        services.audit.flush()
        with services.sessions() as session:
            events = query_events(session, limit=100)
        refused = [e for e in events if e.action == "read-changes" and e.outcome == "denied"]
        assert refused and refused[0].user_email == "researcher@a.example"
    finally:
        services.close()
