"""An archive with access control on, for the access tests: data, users, licences, tokens.

Data: the query fixture's four studies (``tests.query.archive``: FFDM for presentation
and for processing, a DBT, a secondary capture), an expert-mark SR on image 1.1.1, two
clients with clinical rows, and a saved cohort ``C`` of studies 1 and 2 (clients
``P001`` and ``' OR 1=1--``); studies 3 and 4 are outside it. A second cohort ``D``
holds study 4 only.

Licences on cohort C: L1 (2d, marks, clinical), L2 (3d), L3 (everything, suspended).
Users: an admin, a curator, researcher r1 (member of L1, L2 and L3) and researcher r2
(member of L2 only). Tokens: one per user, r1's bound to L1 and to L2, an expired one
and a revoked one.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select, update

from omipacs.access import admin
from omipacs.access.models import Token
from omipacs.bootstrap import open_archive
from omipacs.clinical.models import Client
from omipacs.cohorts.models import Cohort, CohortMember
from omipacs.config import AuthSettings, Peer, Settings
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.services import Services
from omipacs.web import server as web_server
from tests.annotations.sr_builders import planar_group, to_bytes, viewer_sr
from tests.conftest import make_settings
from tests.pg import create_database
from tests.query.archive import populate, uid

SR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass(frozen=True)
class Target:
    """One stored instance the matrix asks for."""

    name: str
    study: str
    series: str
    sop: str
    kind: str
    """The data scope it falls in: 2d, for-processing, 3d, marks, other."""
    member: bool
    """In cohort C."""
    pixels: bool = True


@dataclass
class AccessArchive:
    """The running archive and everything the tests need to address it."""

    services: Services
    base: str
    backend: str
    tokens: dict[str, str]
    licences: dict[str, int]
    cohorts: dict[str, int]
    targets: dict[str, Target]
    clients: dict[str, str]
    objects: tuple[Target, ...]
    """Every stored object (targets and the rest), for what a study or series shows."""

    def headers(self, who: str) -> dict[str, str]:
        """The Authorization header of a named token ('none': no header)."""
        if who == "none":
            return {}
        if who == "malformed":
            return {"Authorization": "Bearer not-a-token"}
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _mark_sr(services: Services, root: Path) -> str:
    """Ingest an expert-mark SR on image 1.1.1; returns its (series, sop) UIDs."""
    from omipacs.index.models import Instance

    with services.sessions() as session:
        key = session.scalar(
            select(Instance.blob_key).where(Instance.sop_instance_uid == uid("1.1.1"))
        )
    assert key is not None
    with services.blobs.open(key) as f:
        image = pydicom.dcmread(io.BytesIO(f.read()), stop_before_pixels=True)
    sr = viewer_sr(image, [planar_group(image, "lesion 1", "POLYLINE",
                                        [[2, 2], [10, 2], [10, 10], [2, 10], [2, 2]])])
    path = root / "mark-sr.dcm"
    path.write_bytes(to_bytes(sr))
    services.pipeline.ingest_file(path, IngestOrigin(OriginKind.IMPORT, deidentify=False))
    return f"{sr.SeriesInstanceUID}|{sr.SOPInstanceUID}"


def build_for(
    request: Any,
    tmp_path_factory: Any,
    name: str,
    peers: tuple[Peer, ...] = (),
    *,
    workers: int = 1,
    cache_seconds: float = 0.5,
) -> Iterator[AccessArchive]:
    """:func:`build` for a fixture parametrised by backend ("sqlite" or "postgresql")."""
    root: Path = tmp_path_factory.mktemp(f"{name}-{request.param}")
    url = "" if request.param == "sqlite" else create_database(
        request.getfixturevalue("postgres")
    )
    yield from build(root, url, request.param, peers, workers=workers,
                     cache_seconds=cache_seconds)


def build(
    root: Path,
    db_url: str,
    backend: str,
    peers: tuple[Peer, ...] = (),
    *,
    workers: int = 1,
    cache_seconds: float = 0.5,
) -> Iterator[AccessArchive]:
    """Build the archive on ``db_url``, serve it on a real socket, yield, stop.

    ``peers`` are added to the DIMSE allow-list (the SCP itself is the test's to start).
    One HTTP worker by default: the checks expect an admin change to act "at once in
    this process"; other workers see it within ``cache_seconds``.
    """
    base_settings: Settings = make_settings(root, db_url)
    settings = dataclasses.replace(
        base_settings,
        auth=AuthSettings(mode="token", cache_seconds=cache_seconds),
        http=dataclasses.replace(base_settings.http, workers=workers),
        dimse=dataclasses.replace(base_settings.dimse, peers=base_settings.dimse.peers + peers),
    )
    services = open_archive(settings)
    populate(services, root)
    sr_series, sr_sop = _mark_sr(services, root).split("|")
    today = date.today()
    with services.write_sessions.begin() as s:
        for cid, outcome in (("P001", "M"), ("X_1", "N"), ("' OR 1=1--", "B")):
            client = s.scalar(select(Client).where(Client.client_id == cid))
            if client is None:  # ingest makes a row for every imaged client
                client = Client(client_id=cid)
                s.add(client)
            client.outcome, client.has_clinical, client.has_2d = outcome, True, True
            client.has_3d, client.is_marked = cid.startswith("'"), cid == "P001"
        cohorts = {}
        for name, members in (
            ("C", (("P001", "1"), ("' OR 1=1--", "2"))),
            ("D", (("XA1", "4"),)),
        ):
            c = Cohort(name=name, version=1, definition={}, definition_sha256="0" * 64,
                       members_sha256="0" * 64, client_count=len(members),
                       study_count=len(members))
            s.add(c)
            s.flush()
            for client, study in members:
                s.add(CohortMember(cohort_pk=c.pk, client_id=client,
                                   study_instance_uid=uid(study)))
            cohorts[name] = c.pk
        for email, role in (("admin@a.example", "admin"), ("curator@a.example", "curator"),
                            ("r1@lab.example", "researcher"), ("r2@lab.example", "researcher")):
            admin.add_user(s, email, role)
        ends = today + timedelta(days=365)
        licences = {}
        for name, scopes, members in (
            ("L1", "2d,marks,clinical", ["r1@lab.example"]),
            ("L2", "3d", ["r1@lab.example", "r2@lab.example"]),
            ("L3", "2d,for-processing,3d,marks,clinical,density", ["r1@lab.example"]),
        ):
            lic = admin.create_licence(s, title=name, cohort_id=cohorts["C"], scopes=scopes,
                                       ends=ends, members=members)
            licences[name] = lic.id
        admin.set_licence_state(s, licences["L3"], "suspended")
        tokens = {}
        for name, user, licence in (
            ("admin", "admin@a.example", None),
            ("curator", "curator@a.example", None),
            ("r1", "r1@lab.example", None),
            ("r1L1", "r1@lab.example", licences["L1"]),
            ("r1L2", "r1@lab.example", licences["L2"]),
            ("r1L3", "r1@lab.example", licences["L3"]),
            ("r2", "r2@lab.example", None),
            ("expired", "r1@lab.example", licences["L1"]),
            ("revoked", "r1@lab.example", licences["L1"]),
        ):
            secret, info = admin.create_token(s, user, licence_id=licence)
            tokens[name] = secret
            if name == "expired":
                s.execute(update(Token).where(Token.pk == info.id)
                          .values(expires_at=datetime.now() - timedelta(hours=1)))
            if name == "revoked":
                admin.revoke_token(s, str(info.id))
    targets = {
        "2d-member": Target("2d-member", uid("1"), uid("1.1"), uid("1.1.1"), "2d", True),
        "fp-member": Target("fp-member", uid("1"), uid("1.2"), uid("1.2.1"),
                            "for-processing", True),
        "3d-member": Target("3d-member", uid("2"), uid("2.1"), uid("2.1.1"), "3d", True),
        "sr-member": Target("sr-member", uid("1"), sr_series, sr_sop, "marks", True,
                            pixels=False),
        "sc-member": Target("sc-member", uid("2"), uid("2.3"), uid("2.3.1"), "other", True),
        "2d-outside": Target("2d-outside", uid("3"), uid("3.1"), uid("3.1.1"), "2d", False),
    }
    kinds = {"1.1.1": "2d", "1.2.1": "for-processing", "1.3.1": "2d", "1.4.1": "2d",
             "2.1.1": "3d", "2.2.1": "2d", "2.2.2": "2d", "2.3.1": "other", "3.1.1": "2d",
             "4.1.1": "2d"}
    objects = tuple(
        Target(label, uid(label.split(".")[0]), uid(label.rsplit(".", 1)[0]), uid(label), kind,
               label[0] in "12")
        for label, kind in kinds.items()
    ) + (targets["sr-member"],)
    services.engine.dispose()  # the HTTP server is forked: no pooled connection to inherit
    server = web_server.start(services.settings)
    server.wait_ready()
    try:
        yield AccessArchive(
            services=services,
            base=f"http://127.0.0.1:{settings.http.port}",
            backend=backend,
            tokens=tokens,
            licences=licences,
            cohorts=cohorts,
            targets=targets,
            clients={"member": "P001", "outside": "X_1"},
            objects=objects,
        )
    finally:
        server.close()
        services.close()
