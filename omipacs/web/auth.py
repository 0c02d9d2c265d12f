"""Authentication, the access check and the audit trail for every HTTP request.

Views never decide access: before any view runs, the caller is authenticated
(``Authorization: Bearer``), the request's action is looked up in :data:`ACTIONS` (by
blueprint, with per-endpoint entries for the JSON API) and the one access check,
:func:`omipacs.access.policy.authorize`, decides. An endpoint missing from the table
is refused (fail closed; a test walks the URL map). The decision's visibility is what
:func:`omipacs.web.context.restriction` hands to the query and retrieve services.

After the response, one audit record says who did what through which root, with the
outcome and the bytes sent (counted as a streamed body is consumed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Flask, Request, Response, g, request

from omipacs.access.audit import AuditRecord
from omipacs.access.authenticate import Authenticator, utcnow
from omipacs.access.policy import Action, Decision, Principal, Root, authorize
from omipacs.errors import Forbidden, Unauthorized
from omipacs.services import Services

#: Each blueprint's action (cohort_ and licence_ roots share their blueprint's entry).
BLUEPRINT_ACTIONS: dict[str, Action] = {
    "qido": Action.READ_IMAGES,
    "wado": Action.READ_IMAGES,
    "stow": Action.INGEST,
    "capabilities": Action.CAPABILITIES,
    "admin": Action.ADMIN,
}

#: JSON API endpoints, one by one.
ENDPOINT_ACTIONS: dict[str, Action] = {
    "api.get_stats": Action.READ_STATS,
    "api.cohorts": Action.READ_COHORTS,
    "api.cohort": Action.READ_COHORTS,
    "api.query_cohort": Action.QUERY_COHORTS,
    "api.create_cohort": Action.WRITE_COHORTS,
    "api.post_clinical": Action.INGEST,
    "api.post_marks": Action.INGEST,
    "api.get_marks": Action.READ_MARKS,
    "api.study_marks": Action.READ_MARKS,
    "api.timeline": Action.READ_CLINICAL,
    "api.priors": Action.READ_CLINICAL,
    "requests.submit": Action.REQUEST_ACCESS,
    "requests.mine": Action.REQUEST_ACCESS,
    "requests.show": Action.REQUEST_ACCESS,
    "requests.resubmit": Action.REQUEST_ACCESS,
    "requests.decide": Action.ADMIN,
    "releases.create": Action.ADMIN,
    "releases.listing": Action.READ_RELEASES,
    "releases.show": Action.READ_RELEASES,
    "admin.audit": Action.READ_AUDIT,
    "changes.list_changes": Action.READ_CHANGES,
    "withdrawals.create": Action.ADMIN,
    "withdrawals.index": Action.ADMIN,
}


#: Per-blueprint readers of the credential, in place of the ``Authorization`` header:
#: the dashboard (:mod:`omipacs.web.ui.session`) reads its session cookie. A reader
#: returns the header value to check (``Bearer <token>``), or None.
CREDENTIALS: dict[str, Callable[[Request], str | None]] = {}

#: Per-blueprint choice of the licence a request works under, made after authentication
#: and before the access check (the dashboard remembers the licence a researcher picked;
#: it may also set ``g.licence_id`` so that images are read through that licence's root).
#: Without one, the ``licence`` query parameter names it.
LICENCE_CHOICE: dict[str, Callable[[Principal], str | None]] = {}

#: Endpoints served whoever calls, signed in or not (the dashboard's login form and its
#: assets); a credential is still checked when present, so the page knows who is there.
OPTIONAL_AUTHENTICATION: set[str] = set()


def action_for(endpoint: str | None) -> Action | None:
    """The action of ``endpoint`` (None: not in the table, so refused)."""
    if endpoint is None:
        return None
    if endpoint in ENDPOINT_ACTIONS:
        return ENDPOINT_ACTIONS[endpoint]
    blueprint = endpoint.split(".", 1)[0]
    for prefix in ("cohort_", "licence_"):
        if blueprint.startswith(prefix):
            blueprint = blueprint[len(prefix) :]
    return BLUEPRINT_ACTIONS.get(blueprint)


def _root() -> Root:
    if g.get("licence_id") is not None:
        return Root("licence", int(g.licence_id))
    if g.get("cohort_id") is not None:
        return Root("cohort", int(g.cohort_id))
    return Root()


class _Counted:
    """A response body that counts what it yields and audits when closed."""

    def __init__(self, body: Iterable[bytes], done: Any) -> None:
        self._body = body
        self._done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        try:
            if close is not None:
                close()
        finally:
            self._done(self.sent)


def install(app: Flask, services: Services) -> None:
    """Authenticate, authorize and audit every request of ``app``."""
    authenticator = Authenticator(services.settings.auth)
    app.extensions["omipacs.auth"] = authenticator

    @app.before_request
    def _check() -> None:
        g.started = utcnow()
        reader = CREDENTIALS.get(request.blueprint or "")
        header = reader(request) if reader else request.headers.get("Authorization")
        try:
            principal = authenticator.authenticate(services.sessions, header)
        except Unauthorized:
            if request.endpoint in OPTIONAL_AUTHENTICATION:
                g.principal = None
                return
            raise
        g.principal = principal
        if request.routing_exception is not None:
            return  # 404/405 from routing, after authentication
        action = action_for(request.endpoint)
        if action is None:
            raise Forbidden("this endpoint is not open to anyone")
        chooser = LICENCE_CHOICE.get(request.blueprint or "")
        licence = chooser(principal) if chooser else request.args.get("licence")
        # A session is opened only if the decision needs the index (see authorize).
        g.decision = authorize(services.sessions, principal, action, _root(), licence=licence)

    @app.after_request
    def _audit(response: Response) -> Response:
        if response.status_code == 401:
            error = ' error="invalid_token"' if request.headers.get("Authorization") else ""
            response.headers["WWW-Authenticate"] = f'Bearer realm="omipacs"{error}'
        if services.audit is None:
            return response
        principal: Principal | None = g.get("principal")
        decision: Decision | None = g.get("decision")
        reason = g.get("error_reason", "")

        def emit(sent: int | None) -> None:
            record = AuditRecord(
                at=g_started,
                user_email=principal.email if principal else "",
                token_prefix=principal.token_prefix if principal else "",
                licence_pk=decision.licence.id if decision and decision.licence else root_licence,
                remote=remote,
                door="http",
                action=decision.action.value if decision else action_name,
                resource=resource,
                outcome="allowed" if response.status_code < 400 else "denied",
                reason=reason[:128],
                status=response.status_code,
                bytes_sent=sent,
            )
            assert services.audit is not None
            services.audit.record(record, token_id=principal.token_id if principal else None)

        # Everything the record needs is read now: the body may finish after the request.
        g_started = g.get("started") or utcnow()
        root = _root()
        root_licence = root.id if root.kind == "licence" else None
        action = action_for(request.endpoint)
        action_name = action.value if action else "unknown"
        remote = request.remote_addr or ""
        query = request.query_string.decode("latin-1")[:512]
        resource = f"{root.describe()} {request.method} {request.path}" + (
            f"?{query}" if query else ""
        )
        length = response.content_length
        if response.is_streamed and length is None:
            counted = _Counted(response.response, emit)
            response.response = counted
        else:
            emit(length if length is not None else len(response.get_data()))
        return response
