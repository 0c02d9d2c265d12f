"""Query/Retrieve through the access check: a peer mapped to a licence finds and gets
only the licence's members within its scopes; an unmapped peer sees the archive; a
peer whose licence is not in force is refused; every request is audited.

pynetdicom SCUs against the SCP on a real socket, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    Comprehensive3DSRStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalMammographyXRayImageStorageForProcessing,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
)

from omipacs.access import admin
from omipacs.access.audit import query_events
from omipacs.config import Peer
from omipacs.dimse import scp
from tests.query.archive import uid
from tests.web.access_fixture import AccessArchive, build_for

PEERS = (Peer("LIC1", licence=1), Peer("LIC3", licence=3), Peer("CURATE"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AccessArchive]:
    for a in build_for(request, tmp_path_factory, "qr-access", PEERS):
        assert a.licences == {"L1": 1, "L2": 2, "L3": 3}
        server = scp.start(a.services)
        try:
            yield a
        finally:
            server.shutdown()


def _find(a: AccessArchive, ae_title: str, level: str, **keys: str) -> tuple[list[str], int]:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    settings = a.services.settings.dimse
    assoc = ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title)
    assert assoc.is_established
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    key = {"STUDY": "StudyInstanceUID", "IMAGE": "SOPInstanceUID"}[level]
    setattr(ds, key, "")
    for k, v in keys.items():
        setattr(ds, k, v)
    found, final = [], -1
    for status, identifier in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind):
        if status is None:
            break
        if status.Status in (0xFF00, 0xFF01):
            found.append(str(getattr(identifier, key)))
        else:
            final = int(status.Status)
    assoc.release()
    return sorted(found), final


def _get(a: AccessArchive, ae_title: str, study: str) -> tuple[list[str], int]:
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for cx in (DigitalMammographyXRayImageStorageForPresentation,
               DigitalMammographyXRayImageStorageForProcessing, Comprehensive3DSRStorage):
        ae.add_requested_context(cx)
        roles.append(build_role(cx, scp_role=True))
    settings = a.services.settings.dimse
    assoc = ae.associate("127.0.0.1", settings.port, ae_title=settings.ae_title,
                         ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    final = -1
    for status, _ in assoc.send_c_get(ds, StudyRootQueryRetrieveInformationModelGet):
        if status is not None and status.Status not in (0xFF00, 0xFF01):
            final = int(status.Status)
    assoc.release()
    return sorted(received), final


def test_a_licence_peer_finds_only_members_within_scopes(archive: AccessArchive) -> None:
    a = archive
    studies, status = _find(a, "LIC1", "STUDY")
    assert status == 0 and studies == [uid("1"), uid("2")]  # studies 3 and 4 are outside
    images, status = _find(a, "LIC1", "IMAGE", StudyInstanceUID=uid("1"))
    assert status == 0
    assert uid("1.1.1") in images and uid("1.2.1") not in images  # 2d yes, raw no
    assert _find(a, "LIC1", "IMAGE", StudyInstanceUID=uid("3"))[0] == []
    everything, status = _find(a, "CURATE", "STUDY")
    assert status == 0 and everything == [uid(s) for s in "1234"]


def test_a_licence_peer_gets_only_what_it_may_see(archive: AccessArchive) -> None:
    a = archive
    got, status = _get(a, "LIC1", uid("1"))
    assert status == 0
    assert uid("1.1.1") in got and uid("1.2.1") not in got
    assert a.targets["sr-member"].sop in got  # the licence has marks
    got, _ = _get(a, "LIC1", uid("3"))
    assert got == []
    got, status = _get(a, "CURATE", uid("1"))
    assert status == 0 and uid("1.2.1") in got


def test_a_peer_whose_licence_is_not_in_force_is_refused(archive: AccessArchive) -> None:
    a = archive  # L3 is suspended
    assert _find(a, "CURATE", "STUDY")[1] == 0
    assert _get(a, "LIC1", uid("1"))[1] == 0
    found, status = _find(a, "LIC3", "STUDY")
    assert found == [] and status == 0x0124
    with a.services.write_sessions.begin() as s:
        admin.set_licence_state(s, a.licences["L1"], "suspended")
    try:
        assert _find(a, "LIC1", "STUDY") == ([], 0x0124)
    finally:
        with a.services.write_sessions.begin() as s:
            admin.set_licence_state(s, a.licences["L1"], "active")
    assert a.services.audit is not None
    a.services.audit.flush()
    with a.services.sessions() as s:
        events = [e for e in query_events(s, limit=100_000) if e.door == "dimse"]
    assert {e.user_email for e in events} >= {"ae:LIC1", "ae:LIC3", "ae:CURATE"}
    refused = [e for e in events if e.outcome == "denied"]
    assert refused and all(e.user_email in ("ae:LIC1", "ae:LIC3") for e in refused)
    assert any(e.licence_pk == 1 and e.action == "c-get" for e in events)
