"""``/api/v1/withdrawals``: withdraw a client (admins), list the tombstones.

A thin view over :func:`omipacs.withdrawal.withdraw.run_withdrawal`. The NHS number is
taken from the JSON body only (never the URL, which the audit trail records).
"""

from __future__ import annotations

from flask import Blueprint, Response, request

from omipacs.errors import BadRequest
from omipacs.web.api import _body, _json
from omipacs.web.context import decision, services
from omipacs.withdrawal.withdraw import list_withdrawals, run_withdrawal

bp = Blueprint("withdrawals", __name__)


@bp.post("/withdrawals")
def create() -> Response:
    doc = _body()
    if not isinstance(doc, dict) or set(doc) - {"client_id", "nhs_number"}:
        raise BadRequest("expected {client_id} or {nhs_number}")
    values = {k: doc.get(k) for k in ("client_id", "nhs_number")}
    if any(v is not None and not isinstance(v, str) for v in values.values()):
        raise BadRequest("client_id and nhs_number must be strings")
    report = run_withdrawal(
        services(),
        client_id=values["client_id"],
        nhs_number=values["nhs_number"],
        actor=decision().principal.email,
        door="http",
        remote=request.remote_addr or "",
    )
    return _json(report.to_dict())


@bp.get("/withdrawals")
def index() -> Response:
    with services().sessions() as session:
        return _json(list_withdrawals(session))
