"""Releases: a licence's data written to a folder or bucket, incremental and verifiable.

A release is made in three steps, each a function any worker can run
(docs/releases.md):

1. :func:`plan` (one process): in one consistent read of the index, the licence's
   :class:`~omipacs.index.visibility.Visibility` — exactly what its holder sees on every
   other door — gives the DICOM files; the tables, README, ``removed.csv`` and
   ``withdrawn.csv`` are made and written; files are compared by path and SHA-256 with
   the previous complete release at the same URL, and those new or changed are cut
   into batches (the journal, in ``release_batch``).
2. :func:`copy_batch` (any number of workers, in-process threads or procrastinate
   jobs): stream each file of a batch from the blob store to
   ``release-<N>/<client>/<study>/<series>/<instance>.dcm``, hashing as it goes; mark
   the batch done. A batch taken again after a crash first looks for finished files
   at the destination, so nothing finished is copied twice.
3. :func:`finish` (whoever marks the last batch done): write ``manifest.csv`` and,
   last, ``manifest.json``. A release folder without ``manifest.json`` is not a release.

Unchanged files are not copied again: release *N+1* lists them in its manifest with the
earlier release folder that holds their bytes (``release`` column). Releases are never
changed once their manifest is written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from omipacs import __version__
from omipacs.access.models import Licence
from omipacs.access.policy import grant_of, licence_visibility
from omipacs.access.scopes import SOP_CLASSES, Scope, format_scopes
from omipacs.clinical.models import Client
from omipacs.cohorts.models import Cohort
from omipacs.deid.profile import OMIPACS_OPTIONS
from omipacs.errors import BadRequest, NotFound
from omipacs.export.claims import claim, forget
from omipacs.export.destination import NO_LIMIT, Destination, RateLimit
from omipacs.export.increment import FeedDelta, read_feed
from omipacs.export.models import Release, ReleaseBatch
from omipacs.export.tables import TableFile, clinical_tables, csv_lines, mark_tables, to_csv
from omipacs.index.changes import current_sequence
from omipacs.index.models import Instance, Patient, Series, Study
from omipacs.services import Services

log = logging.getLogger(__name__)

CLAIM_POLL: Final = 0.5
"""Seconds between looks at batches another process is copying."""
BATCH_BYTES: Final = 1 << 30
"""A batch closes once it holds this many bytes (one DBT may exceed it alone)."""
MANIFEST: Final = "manifest.json"
MANIFEST_CSV: Final = "manifest.csv"
UNFINISHED: Final = ("staging", "running", "failed")
CHECKS: Final = ("sha256", "size")
"""How a copy is checked before it becomes visible: ``sha256``, its bytes re-hashed
against the index's SHA-256 as they are copied; ``size`` (folder copies of local blobs),
its size only, the kernel copying an immutable blob whose SHA-256 the index recorded at
ingest (docs/releases.md, "Checking copies")."""
DEID_PROFILE: Final = (
    "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile with "
    + ", ".join(sorted(o.name.replace("_", " ").title() for o in OMIPACS_OPTIONS))
    + "; pseudonymous UIDs and client IDs, dates shifted per client"
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# -- layout --------------------------------------------------------------------------------


def licence_folder(licence_id: int) -> str:
    return f"licence-{licence_id}"


def release_folder(licence_id: int, number: int) -> str:
    """``licence-<id>/release-<NNNN>``: where release ``number``'s files are."""
    return f"{licence_folder(licence_id)}/release-{number:04d}"


def path_part(value: str) -> str:
    """A client ID as one safe path segment: letters, digits, ``-`` and ``_`` kept, the
    rest percent-encoded (a leading dot too), so no ID can name another folder."""
    quoted = urllib.parse.quote(value, safe="-_")
    return quoted or "%00"


def image_path(client_id: str, study: str, series: str, sop: str) -> str:
    """``<client>/<study>/<series>/<instance>.dcm`` (UIDs are validated ``[0-9.]``)."""
    return f"{path_part(client_id)}/{study}/{series}/{sop}.dcm"


def study_folder(client_id: str, study: str) -> str:
    return f"{path_part(client_id)}/{study}"


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseInfo:
    """A release as the CLI and the REST API show it."""

    licence_id: int
    number: int
    url: str
    state: str
    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    base_number: int | None
    change_seq: int
    counts: dict[str, Any]
    verification: str
    error: str
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            doc[name] = value.isoformat() + "Z" if isinstance(value, datetime) else value
        return doc


def _info(row: Release) -> ReleaseInfo:
    return ReleaseInfo(
        licence_id=row.licence_pk, number=row.number, url=row.url, state=row.state,
        files_total=row.files_total, files_done=row.files_done, bytes_total=row.bytes_total,
        bytes_done=row.bytes_done, base_number=row.base_number, change_seq=row.change_seq,
        counts=dict(row.counts or {}), verification=row.verification, error=row.error,
        created_at=row.created_at, started_at=row.started_at, completed_at=row.completed_at,
    )


def list_releases(session: Session, licence_id: int) -> list[ReleaseInfo]:
    """A licence's releases, newest first (404 for an unknown licence)."""
    grant_of(session, licence_id)
    rows = session.scalars(
        select(Release).where(Release.licence_pk == licence_id).order_by(Release.number.desc())
    )
    return [_info(r) for r in rows]


def get_release(session: Session, licence_id: int, number: int) -> ReleaseInfo:
    """One release of a licence."""
    return _info(_row(session, licence_id, number))


def _row(session: Session, licence_id: int, number: int) -> Release:
    row = session.scalar(
        select(Release).where(Release.licence_pk == licence_id, Release.number == number)
    )
    if row is None:
        raise NotFound("no such release")
    return row


# -- progress --------------------------------------------------------------------------------


@dataclass
class Tally:
    """Bytes and files moved by this process, read by a progress display."""

    bytes: int = 0
    files: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes += n

    def add_file(self) -> None:
        with self._lock:
            self.files += 1


# -- 1. plan ---------------------------------------------------------------------------------


def planned(row: Release) -> bool:
    """Whether the release's files are decided (its batches recorded, maybe none)."""
    return row.state == "complete" or "facts" in (row.plan or {})


def begin(
    session: Session, licence_id: int, url: str, *, full: bool = False,
    check: str = "sha256",
) -> tuple[Release, bool]:
    """The unfinished release of ``licence_id`` at ``url`` (to resume), or a new one.

    ``full``: compare every file with the previous release instead of reading the
    change feed (a release not yet planned takes it; a planned one keeps its plan).
    ``check``: how each copy is checked before it becomes visible (:data:`CHECKS`).
    Returns the row and whether it is new. The caller commits.
    """
    grant_of(session, licence_id)  # 404 for an unknown licence
    # One release is begun at a time per licence: two `release create` started at the
    # same moment on PostgreSQL would otherwise both number theirs N+1 and one would
    # fail on the unique number. The second waits here, then finds the first (to resume
    # it, same destination) or numbers its own after it. (SQLite writers already queue.)
    session.execute(select(Licence.pk).where(Licence.pk == licence_id).with_for_update())
    if check not in CHECKS:
        raise BadRequest(f"check must be one of {', '.join(CHECKS)}")
    request = {"full": full, "check": check}
    url = url.rstrip("/")
    if not url:
        raise BadRequest("a release needs a destination URL")
    found = session.scalar(
        select(Release)
        .where(Release.licence_pk == licence_id, Release.url == url,
               Release.state.in_(UNFINISHED))
        .order_by(Release.number.desc())
    )
    if found is not None:
        found.state, found.error = ("running" if planned(found) else "staging"), ""
        if not planned(found):
            found.plan = request
        return found, False
    number = (session.scalar(
        select(func.max(Release.number)).where(Release.licence_pk == licence_id)
    ) or 0) + 1
    row = Release(licence_pk=licence_id, number=number, url=url, state="staging",
                  created_at=utcnow(), verification="", error="", change_seq=0,
                  plan=request)
    session.add(row)
    session.flush()
    return row, True


@dataclass(frozen=True)
class _Image:
    path: str
    bytes: int
    sha256: str
    key: str
    client: str
    study: str
    sop: str
    kind: str
    """2d, for-processing, 3d or marks (the scope the SOP class falls in)."""


_KIND_OF = {uid: scope.value for scope, uids_ in SOP_CLASSES.items() for uid in uids_}
_MARK_CLASSES: Final = sorted(SOP_CLASSES[Scope.MARKS])
_CHUNK: Final = 1000
"""Values per ``IN (…)`` list (what every database takes as parameters)."""


def _view(session: Session, licence_id: int) -> Any:
    """The licence's instance condition (None: everything) and its grant."""
    grant = grant_of(session, licence_id)
    return licence_visibility(grant).at("instance"), grant


def _images(session: Session, licence_id: int, *where: Any) -> Iterator[_Image]:
    """The DICOM files of the licence's view (narrowed by ``where``), in path order."""
    condition, _grant = _view(session, licence_id)
    stmt = (
        select(Patient.patient_id, Study.study_instance_uid, Series.series_instance_uid,
               Instance.sop_instance_uid, Instance.sop_class_uid, Instance.size_bytes,
               Instance.sha256, Instance.blob_key)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .order_by(Patient.patient_id, Study.study_instance_uid, Series.series_instance_uid,
                  Instance.sop_instance_uid)
    )
    if condition is not None:
        stmt = stmt.where(condition)
    if where:
        stmt = stmt.where(*where)
    for client, study, series, sop, sop_class, size, sha, key in session.execute(stmt):
        yield _Image(image_path(client, study, series, sop), int(size), sha, key, client,
                     study, sop, _KIND_OF.get(sop_class, "other"))


def _images_in(session: Session, licence_id: int, column: Any, values: set[str],
               *where: Any) -> Iterator[_Image]:
    """:func:`_images` whose ``column`` is one of ``values``, a chunk at a time."""
    ordered = sorted(values)
    for i in range(0, len(ordered), _CHUNK):
        yield from _images(session, licence_id, column.in_(ordered[i : i + _CHUNK]), *where)


@dataclass
class _Summary:
    """The licence's view counted in the database (rows per client, study and SOP
    class, never per instance)."""

    clients: list[str]
    studies: set[str]
    instances: int
    kinds: Counter[str]
    with_2d: int
    with_3d: int
    studies_of: dict[str, set[str]]
    """Each client's studies in the view."""


def _summary(session: Session, licence_id: int) -> _Summary:
    condition, _grant = _view(session, licence_id)
    stmt = (
        select(Patient.patient_id, Study.study_instance_uid, Instance.sop_class_uid,
               func.count())
        .select_from(Instance)
        .join(Series, Instance.series_pk == Series.pk)
        .join(Study, Series.study_pk == Study.pk)
        .join(Patient, Study.patient_pk == Patient.pk)
        .group_by(Patient.patient_id, Study.study_instance_uid, Instance.sop_class_uid)
    )
    if condition is not None:
        stmt = stmt.where(condition)
    clients: set[str] = set()
    studies: set[str] = set()
    kinds: Counter[str] = Counter()
    by_kind: dict[str, set[str]] = {"2d": set(), "3d": set()}
    studies_of: dict[str, set[str]] = {}
    for client, study, sop_class, n in session.execute(stmt):
        kind = _KIND_OF.get(sop_class, "other")
        clients.add(client)
        studies.add(study)
        studies_of.setdefault(client, set()).add(study)
        kinds[kind] += int(n)
        if kind in ("2d", "for-processing"):
            by_kind["2d"].add(client)
        elif kind == "3d":
            by_kind["3d"].add(client)
    return _Summary(sorted(clients), studies, sum(kinds.values()), kinds,
                    len(by_kind["2d"]), len(by_kind["3d"]), studies_of)


def read_manifest(dest: Destination, licence_id: int, number: int) -> dict[str, Any] | None:
    """The manifest of a published release (None: not published there)."""
    data = dest.read_bytes(f"{release_folder(licence_id, number)}/{MANIFEST}")
    if data is None:
        return None
    doc: dict[str, Any] = json.loads(data)
    return doc


def _base(session: Session, row: Release, dest: Destination) -> tuple[int | None, dict[str, Any]]:
    """The latest complete release at the same URL, and its manifest."""
    prior = session.scalar(
        select(Release.number)
        .where(Release.licence_pk == row.licence_pk, Release.url == row.url,
               Release.state == "complete", Release.number < row.number)
        .order_by(Release.number.desc())
    )
    if prior is None:
        return None, {}
    manifest = read_manifest(dest, row.licence_pk, prior)
    if manifest is None:
        raise NotFound(f"release {prior} is recorded as complete but its manifest is not at "
                       f"{row.url}: verify it, or release to a new URL")
    return prior, manifest


def _deid_keys(services: Services) -> Any:
    return services.extras.get("deid.keys") or services.settings


def _withdrawn(session: Session, services: Services, clients: set[str]) -> list[str]:
    """Which of ``clients`` have withdrawn (keyed-hash tombstones)."""
    from omipacs.deid.tombstones import is_withdrawn

    try:
        return sorted(c for c in clients if is_withdrawn(session, c, _deid_keys(services)))
    except Exception as exc:  # no de-identification key configured
        log.warning("cannot check withdrawals without the de-identification key: %s", exc)
        return []


def _withdrawn_by_hash(services: Services, clients: set[str], hashes: set[str]) -> list[str]:
    """Which of ``clients`` a ``client-withdrawn`` event's keyed hash names."""
    from omipacs.deid.tombstones import client_key

    if not hashes:
        return []
    try:
        keys = _deid_keys(services)
        return sorted(c for c in clients if client_key(keys, c) in hashes)
    except Exception as exc:  # no de-identification key configured
        log.warning("cannot match withdrawals without the de-identification key: %s", exc)
        return []


def plan(services: Services, release_pk: int, dest: Destination) -> None:
    """Step 1: decide the release's files, write its tables, cut the copies into batches.

    The index is read in one snapshot (images, tables, the feed and its position agree)
    and the tables are written before the write transaction that records the batches,
    so no lock is held while bytes go over the network.
    """
    with services.sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        row = session.get(Release, release_pk)
        assert row is not None
        if planned(row):
            return  # planned already (a resumed run)
        seq = current_sequence(session)
        request = dict(row.plan or {})
        doc = _plan_doc(services, session, row, dest, seq, full=bool(request.get("full")),
                        check=str(request.get("check") or "sha256"))
    with services.write_sessions.begin() as wsession:
        row = wsession.get(Release, release_pk)
        assert row is not None
        if planned(row):
            return
        row.plan = doc["plan"]
        row.base_number = doc["base"]
        row.change_seq = seq
        batches = doc["batches"]
        for i, batch in enumerate(batches, 1):
            wsession.add(ReleaseBatch(
                release_pk=release_pk, number=i, entries=batch, files=len(batch),
                bytes=sum(e["bytes"] for e in batch), attempts=0,
            ))
        row.batches_total = len(batches)
        row.files_total = sum(len(b) for b in batches)
        row.bytes_total = sum(e["bytes"] for b in batches for e in b)
        row.counts = doc["plan"]["facts"]["counts"]
        row.state = "running"
        row.started_at = row.started_at or utcnow()
        log.info("release %s of licence %s planned (%s): %s files to copy", row.number,
                 row.licence_pk, doc["plan"]["facts"]["increment"]["mode"], row.files_total)


def _in_chunks(session: Session, stmt: Any, column: Any, values: list[str]) -> list[Any]:
    """``stmt`` with ``column IN values``, in chunks a database takes as parameters."""
    out: list[Any] = []
    for i in range(0, len(values), _CHUNK):
        out += list(session.execute(stmt.where(column.in_(values[i : i + _CHUNK]))))
    return out


def _is_marks_table(path: str) -> bool:
    return path.count("/") == 2 and path.rsplit("/", 1)[1] in ("marks.csv", "marks.json")


def _is_clinical_table(path: str) -> bool:
    return path.startswith("clinical/") or path == "data_dictionary.csv"


def _sop_of(path: str) -> str:
    return path.rsplit("/", 1)[-1][:-4]


@dataclass
class _Selection:
    """Which files release N+1 holds: what it references from release N untouched
    (``kept``), what it looks at afresh (``fresh``: copied unless release N holds the
    same bytes at the same path), and how that was decided."""

    kept: list[dict[str, Any]]
    fresh: list[_Image]
    withdrawn: list[str]
    increment: dict[str, Any]
    delta: FeedDelta | None = None
    """The feed's events (None: every file was compared)."""


def _full_selection(services: Services, session: Session, row: Release, clients: list[str],
                    base: Mapping[str, Any], reason: str) -> _Selection:
    """Every file of the view, compared by path and SHA-256 with the base release."""
    base_clients = set(base.get("clients", []))
    withdrawn = _withdrawn(session, services, base_clients - set(clients))
    return _Selection([], list(_images(session, row.licence_pk)), withdrawn,
                      {"mode": "full-scan", "reason": reason})


def _feed_selection(services: Services, session: Session, row: Release,
                    previous: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any],
                    seq: int) -> _Selection:
    """Release N's files, changed only where the feed's events since N say so."""
    since = int(base["change_feed_sequence"])
    delta = read_feed(session, since, seq)
    withdrawn = _withdrawn_by_hash(services, set(base.get("clients", [])),
                                   delta.withdrawn_hashes)
    gone = {path_part(c) for c in withdrawn}
    kept = [dict(e) for p, e in previous.items() if p.endswith(".dcm")
            and p.split("/", 1)[0] not in gone and _sop_of(p) not in delta.sops]
    # Looked up again in the licence's view: an event outside it finds nothing.
    fresh = list(_images_in(session, row.licence_pk, Instance.sop_instance_uid, delta.sops))
    return _Selection(kept, fresh, withdrawn, {"mode": "change-feed", **delta.to_dict()},
                      delta)


def _plan_doc(
    services: Services, session: Session, row: Release,
    dest: Destination, seq: int, *, full: bool = False, check: str = "sha256",
) -> dict[str, Any]:
    licence = session.get(Licence, row.licence_pk)
    assert licence is not None
    grant = grant_of(session, row.licence_pk)
    cohort = session.get(Cohort, grant.cohort_id)
    assert cohort is not None
    scopes = grant.scopes
    visibility = licence_visibility(grant)
    folder = release_folder(row.licence_pk, row.number)
    base_number, base = _base(session, row, dest)
    previous: dict[str, dict[str, Any]] = {f["path"]: f for f in base.get("files", [])}
    summary = _summary(session, row.licence_pk)
    clients = summary.clients
    study_uids = summary.studies

    # Which images: from the change feed since the base release, or by comparing all.
    base_cohort = base.get("cohort", {}).get("id")
    if base_number is None:
        selection = _full_selection(services, session, row, clients, base,
                                    "first release at this destination")
    elif full:
        selection = _full_selection(services, session, row, clients, base,
                                    "requested (--full)")
    elif base_cohort != grant.cohort_id:
        selection = _full_selection(
            services, session, row, clients, base,
            f"the licence was re-bound from cohort {base_cohort} to {grant.cohort_id}")
    else:
        selection = _feed_selection(services, session, row, previous, base, seq)
        found = len(selection.kept) + len({i.path for i in selection.fresh})
        if found != summary.instances:
            # The feed and the index disagree (e.g. a change written outside the feed):
            # the index is the truth, so every file is compared instead.
            log.warning("release %s of licence %s: the change feed gives %s files, the "
                        "index %s; comparing every file", row.number, row.licence_pk,
                        found, summary.instances)
            selection = _full_selection(
                services, session, row, clients, base,
                f"the change feed gave {found} DICOM files, the index {summary.instances}")
    delta = selection.delta
    withdrawn = selection.withdrawn
    fresh = selection.fresh

    # Derived files: tables and their dictionary, made again only where needed.
    derived: list[TableFile] = []
    referenced: list[dict[str, Any]] = []
    base_clients = set(base.get("clients", []))
    base_studies = {p.split("/", 2)[1] for p in previous if p.endswith(".dcm")}
    remake_clinical = delta is None or bool(
        withdrawn or delta.clinical_clients & (set(clients) | base_clients)
        or set(clients) != base_clients or study_uids != base_studies
    )
    dictionary: list[dict[str, str]] = []
    if remake_clinical:
        files, rows = clinical_tables(session, clients, scopes, study_uids)
        derived += files
        dictionary += rows
    else:
        referenced += [dict(e) for p, e in previous.items() if _is_clinical_table(p)]
    if delta is None:
        mark_studies: set[str] | None = None
        sr_paths = {i.sop: i.path for i in fresh if i.kind == "marks"}
    else:
        mark_studies = delta.studies & study_uids
        if Scope.CLINICAL in scopes:  # marks carry the client's outcome and pathology
            for client in delta.clinical_clients:
                mark_studies |= summary.studies_of.get(client, set())
        sr_paths = {i.sop: i.path for i in _images_in(
            session, row.licence_pk, Study.study_instance_uid, mark_studies,
            Instance.sop_class_uid.in_(_MARK_CLASSES))}
        gone = {path_part(c) for c in withdrawn}
        referenced += [dict(e) for p, e in previous.items() if _is_marks_table(p)
                       and p.split("/", 2)[1] in study_uids - mark_studies
                       and p.split("/", 1)[0] not in gone]
    files, rows = mark_tables(session, visibility, scopes, study_folder, sr_paths,
                              studies=mark_studies)
    derived += files
    dictionary += rows
    if remake_clinical and dictionary:
        derived.append(TableFile("data_dictionary.csv", to_csv(
            dictionary, ["table", "column", "description", "table_description"])))

    # What left since the base release, and who withdrew.
    current_paths = ({e["path"] for e in selection.kept} | {i.path for i in fresh}
                     | {f.path for f in derived} | {e["path"] for e in referenced})
    withdrawn_parts = {path_part(c) for c in withdrawn}
    left = [_sop_of(p) for p in set(previous) - current_paths if p.endswith(".dcm")]
    present = {sop for (sop,) in _in_chunks(
        session, select(Instance.sop_instance_uid), Instance.sop_instance_uid, left)}
    removed = []
    for path in sorted(set(previous) - current_paths - {"README.txt", "removed.csv",
                                                         "withdrawn.csv"}):
        if path.split("/", 1)[0] in withdrawn_parts:
            reason = "withdrawn"
        elif path.endswith(".dcm"):
            in_index = _sop_of(path) in present
            reason = "no longer in the licence's view" if in_index else "deleted"
        else:
            reason = "no longer applicable"
        removed.append({"path": path, "sha256": previous[path]["sha256"],
                        "release": previous[path]["release"], "reason": reason})
    now = utcnow()
    counts: dict[str, Any] = {
        "clients": len(clients),
        "studies": len(study_uids),
        "instances": summary.instances,
        "instances_by_kind": dict(sorted(summary.kinds.items())),
        "clients_with_2d": summary.with_2d,
        "clients_with_3d": summary.with_3d,
        "removed": len(removed),
        "withdrawn_clients": len(withdrawn),
    }
    if Scope.CLINICAL in scopes:
        outcomes = Counter(
            o or "U" for (o,) in _in_chunks(
                session, select(Client.outcome), Client.client_id, clients)
        )
        outcomes["U"] += len(clients) - sum(outcomes.values())
        counts["clients_by_outcome"] = {k: v for k, v in sorted(outcomes.items()) if v}
    facts: dict[str, Any] = {
        "licence": {"id": licence.pk, "title": licence.title, "scopes": format_scopes(scopes),
                    "ends": licence.ends.isoformat()},
        "cohort": {"id": cohort.pk, "name": cohort.name, "version": cohort.version,
                   "members_sha256": cohort.members_sha256,
                   "definition_sha256": cohort.definition_sha256},
        "release": row.number,
        "base_release": base_number,
        "created": now.isoformat(timespec="seconds") + "Z",
        "change_feed_sequence": seq,
        "increment": selection.increment,
        "copies_checked": check,
        "software": f"omipacs {__version__}",
        "deidentification": DEID_PROFILE,
        "counts": counts,
    }
    derived.append(TableFile("removed.csv", to_csv(removed, ["path", "sha256", "release",
                                                             "reason"])))
    derived.append(TableFile("withdrawn.csv", to_csv(
        [{"client_id": c, "folder": path_part(c)} for c in withdrawn], ["client_id", "folder"])))
    derived.append(TableFile("README.txt", readme(facts, derived, referenced).encode()))

    # Decide copy or reference (the hashes confirm what the feed says), and write the
    # derived files that are new.
    entries: list[dict[str, Any]] = [*selection.kept, *referenced]
    to_copy: list[dict[str, Any]] = []
    copied = 0
    reused = len(entries)
    for image in fresh:
        before = previous.get(image.path)
        if before is not None and before["sha256"] == image.sha256:
            entries.append({"path": image.path, "bytes": image.bytes, "sha256": image.sha256,
                            "release": before["release"]})
            reused += 1
            continue
        entry = {"path": image.path, "bytes": image.bytes, "sha256": image.sha256,
                 "release": row.number}
        entries.append(entry)
        to_copy.append({**entry, "key": image.key})
        copied += 1
    for table in derived:
        before = previous.get(table.path)
        if before is not None and before["sha256"] == _sha(table.data):
            entries.append({**before})
            reused += 1
            continue
        written = dest.write_bytes(f"{folder}/{table.path}", table.data)
        entries.append({"path": table.path, "bytes": written.bytes,
                        "sha256": written.sha256, "release": row.number})
        copied += 1
    counts["files"] = len(entries)
    counts["files_new"] = copied
    counts["files_unchanged"] = reused
    batch_files = max(1, services.settings.release.batch_files)
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for e in to_copy:
        if current and (len(current) >= batch_files or size >= BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(e)
        size += e["bytes"]
    if current:
        batches.append(current)
    derived_entries = [e for e in entries if not e["path"].endswith(".dcm")]
    reused_images = [e for e in entries if e["path"].endswith(".dcm")
                     and e["release"] != row.number]
    return {
        "base": base_number,
        "batches": batches,
        "plan": {"facts": facts, "clients": clients, "derived": derived_entries,
                 "unchanged": reused_images},
    }


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _increment_line(facts: Mapping[str, Any]) -> str:
    increment = facts.get("increment", {})
    if increment.get("mode") == "change-feed":
        return (f"Changes since release {facts['base_release']}: read from the change feed "
                f"({increment['events']} events after sequence {increment['from_sequence']}).")
    return f"Files listed by comparing every file: {increment.get('reason', '')}."


def readme(facts: Mapping[str, Any], derived: list[TableFile],
           referenced: list[dict[str, Any]] | None = None) -> str:
    """The researcher's README.txt."""
    paths = [t.path for t in derived] + [e["path"] for e in referenced or []]
    names = sorted({p.split("/", 1)[0] for p in paths if p.count("/") <= 1})
    lic, cohort, counts = facts["licence"], facts["cohort"], facts["counts"]
    base = facts["base_release"]
    lines = [
        f"Release {facts['release']} of licence {lic['id']} ({lic['title']})",
        "",
        f"Created {facts['created']} by {facts['software']}, consistent with change-feed "
        f"sequence {facts['change_feed_sequence']}.",
        f"Cohort {cohort['name']} version {cohort['version']} (members SHA-256 "
        f"{cohort['members_sha256']}); data scopes: {lic['scopes']}.",
        f"{counts['clients']} clients, {counts['studies']} studies, {counts['instances']} "
        "DICOM files.",
        _increment_line(facts),
        "",
        "Layout",
        "  <client>/<study>/<series>/<instance>.dcm  DICOM files as stored (de-identified:",
        f"      {facts['deidentification']})",
        "  <client>/<study>/marks.csv|json            expert marks beside their SRs (marks scope)",
        "  clinical/*.csv|json, data_dictionary.csv   clinical data (clinical, density scopes)",
        "  manifest.json, manifest.csv                every file: path, bytes, SHA-256, release",
        "  removed.csv                                files of the previous release that left",
        "  withdrawn.csv                              clients who withdrew: delete their data",
        "",
        "Incremental releases",
    ]
    if base is None:
        lines.append("  This is a full release: every file is in this folder.")
    else:
        lines.append(f"  This release is incremental to release {base}: this folder holds only")
        lines.append("  files new or changed since; the manifest's 'release' column names the")
        lines.append("  release folder holding each file's bytes. To update a copy of release")
        lines.append(f"  {base}: copy this folder over it, then delete every path in removed.csv")
        lines.append("  and every folder in withdrawn.csv.")
    lines += [
        "",
        "Check a copy with the SHA-256 sums in manifest.csv (e.g. sha256sum), or ask the",
        "archive to: omipacs release verify --licence ID --release N --to URL.",
        "A release folder without manifest.json is unfinished: do not use it.",
        f"Files here: {', '.join(names) if names else 'DICOM files only'}",
        "",
    ]
    return "\n".join(lines)


# -- 2. copy ---------------------------------------------------------------------------------


def copy_batch(
    services: Services,
    release_pk: int,
    number: int,
    dest: Destination,
    *,
    threads: int = 1,
    tally: Tally | None = None,
    limit: RateLimit = NO_LIMIT,
) -> bool:
    """Step 2: copy one batch; True when it was the release's last batch to finish.

    The batch is claimed first (:mod:`omipacs.export.claims`): a batch another process
    is copying is left to it (False)."""
    with claim(services, release_pk, number) as mine:
        if not mine:
            return False
        return _copy_claimed(services, release_pk, number, dest, threads=threads,
                             tally=tally, limit=limit)


def _copy_claimed(
    services: Services,
    release_pk: int,
    number: int,
    dest: Destination,
    *,
    threads: int,
    tally: Tally | None,
    limit: RateLimit,
) -> bool:
    with services.write_sessions.begin() as session:
        batch = session.get(ReleaseBatch, (release_pk, number))
        row = session.get(Release, release_pk)
        if batch is None or row is None:
            raise NotFound("no such release batch")
        if batch.done_at is not None:
            return False
        batch.attempts += 1
        resumed = batch.attempts > 1
        entries = list(batch.entries)
        folder = release_folder(row.licence_pk, row.number)
        rehash = (row.plan or {}).get("facts", {}).get("copies_checked", "sha256") != "size"

    def one(entry: dict[str, Any]) -> None:
        relative = f"{folder}/{entry['path']}"
        if resumed and dest.size(relative) == entry["bytes"]:
            # Finished before a crash: whole (an object or a renamed file appears only
            # whole) and checked against this SHA-256 before it was made visible.
            if tally is not None:
                tally.add_bytes(entry["bytes"])
                tally.add_file()
            return
        local = services.blobs.local_path(entry["key"]) if dest.local else None
        if local is not None and limit.rate <= 0:
            dest.copy_local(str(local), relative, expect_sha256=entry["sha256"],
                            expect_bytes=entry["bytes"], rehash=rehash,
                            progress=tally.add_bytes if tally is not None else None)
        else:
            with services.blobs.open(entry["key"]) as src:
                dest.copy_stream(
                    src, relative, expect_sha256=entry["sha256"], limit=limit,
                    progress=tally.add_bytes if tally is not None else None,
                )
        if tally is not None:
            tally.add_file()

    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="release-copy") as pool:
            list(pool.map(one, entries))
    else:
        for entry in entries:
            one(entry)
    with services.write_sessions.begin() as session:
        marked: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(ReleaseBatch)
            .where(ReleaseBatch.release_pk == release_pk, ReleaseBatch.number == number,
                   ReleaseBatch.done_at.is_(None))
            .values(done_at=utcnow())
        )
        if not marked.rowcount:
            return False  # another worker finished it meanwhile
        session.execute(
            update(Release).where(Release.pk == release_pk).values(
                batches_done=Release.batches_done + 1,
                files_done=Release.files_done + len(entries),
                bytes_done=Release.bytes_done + sum(e["bytes"] for e in entries),
            )
        )
        done, total = session.execute(
            select(Release.batches_done, Release.batches_total).where(Release.pk == release_pk)
        ).one()
    return bool(done >= total)


def pending_batches(services: Services, release_pk: int) -> list[int]:
    """Batches of a release not yet marked done."""
    with services.sessions() as session:
        return list(session.scalars(
            select(ReleaseBatch.number)
            .where(ReleaseBatch.release_pk == release_pk, ReleaseBatch.done_at.is_(None))
            .order_by(ReleaseBatch.number)
        ))


# -- 3. finish -------------------------------------------------------------------------------


MANIFEST_COLUMNS: Final = ("path", "bytes", "sha256", "release")


def finish(services: Services, release_pk: int, dest: Destination) -> ReleaseInfo:
    """Step 3: write the manifest (last) and mark the release complete."""
    with services.write_sessions.begin() as session:
        row = session.get(Release, release_pk, with_for_update=True)
        assert row is not None
        if row.state == "complete":
            return _info(row)
        if pending_batches(services, release_pk):
            raise BadRequest("the release has batches still to copy")
        plan_doc = dict(row.plan or {})
        files: list[dict[str, Any]] = list(plan_doc.get("unchanged", []))
        for (entries,) in session.execute(
            select(ReleaseBatch.entries).where(ReleaseBatch.release_pk == release_pk)
            .execution_options(yield_per=64)
        ):
            files += [{k: e[k] for k in MANIFEST_COLUMNS} for e in entries]
        files += plan_doc.get("derived", [])
        files.sort(key=lambda e: e["path"])
        facts = dict(plan_doc["facts"])
        facts["counts"] = {**facts["counts"], "bytes": sum(e["bytes"] for e in files)}
        folder = release_folder(row.licence_pk, row.number)
        dest.sweep_partials(folder)
        with dest.writer(f"{folder}/{MANIFEST_CSV}") as out:
            for line in csv_lines(files, MANIFEST_COLUMNS):
                out.write(line)
        # Last: its presence is what makes the folder a release.
        with dest.writer(f"{folder}/{MANIFEST}") as out:
            write_manifest(out, {**facts, "clients": plan_doc.get("clients", [])}, files)
        row.state = "complete"
        row.counts = facts["counts"]
        row.completed_at = utcnow()
        info = _info(row)
    forget(services, release_pk)
    return info


def write_manifest(out: Any, facts: Mapping[str, Any], files: list[dict[str, Any]]) -> None:
    """``manifest.json`` written a line at a time (a release may list millions of files:
    the document is never built whole in memory): the facts, then ``files``, one entry
    a line, keys sorted."""
    keys = sorted([*facts, "files"])
    out.write(b"{\n")
    for i, key in enumerate(keys):
        out.write(f" {json.dumps(key)}: ".encode())
        if key == "files":
            out.write(b"[")
            for j, entry in enumerate(files):
                out.write(((",\n  " if j else "\n  ")
                           + json.dumps(entry, sort_keys=True)).encode())
            out.write(b"\n ]")
        else:
            out.write(json.dumps(facts[key], sort_keys=True, default=str).encode())
        out.write(b",\n" if i + 1 < len(keys) else b"\n")
    out.write(b"}\n")


def fail(services: Services, release_pk: int, reason: str) -> None:
    """Record that a run stopped; the same command resumes it."""
    with services.write_sessions.begin() as session:
        row = session.get(Release, release_pk)
        if row is not None and row.state != "complete":
            row.state, row.error = "failed", reason[:2000]


# -- running it here ---------------------------------------------------------------------------


def run_here(
    services: Services,
    release_pk: int,
    dest: Destination,
    *,
    workers: int = 4,
    tally: Tally | None = None,
    limit: RateLimit = NO_LIMIT,
) -> ReleaseInfo:
    """Copy every pending batch in this process (``workers`` at a time) and finish.

    Batches another process has claimed are left to it; this one waits until they are
    done, and takes any whose claim vanished unfinished (its holder died)."""
    try:
        plan(services, release_pk, dest)
        pending = pending_batches(services, release_pk)
        while pending:
            with ThreadPoolExecutor(max(1, workers), thread_name_prefix="release") as pool:
                list(pool.map(
                    lambda n: copy_batch(services, release_pk, n, dest, tally=tally,
                                         limit=limit),
                    pending,
                ))
            pending = pending_batches(services, release_pk)
            if pending:
                time.sleep(CLAIM_POLL)
        return finish(services, release_pk, dest)
    except BaseException as exc:
        fail(services, release_pk, f"{type(exc).__name__}: {exc}")
        raise


def totals(services: Services, release_pk: int) -> tuple[int, int, int, int]:
    """(files_total, bytes_total, files_done, bytes_done) of a release."""
    with services.sessions() as session:
        row = session.get(Release, release_pk)
        assert row is not None
        return row.files_total, row.bytes_total, row.files_done, row.bytes_done


# -- verify ------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """What ``release verify`` found."""

    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "files": self.files, "bytes": self.bytes,
                "missing": self.missing, "mismatched": self.mismatched}


def verify(
    dest: Destination,
    licence_id: int,
    number: int,
    *,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Re-read and re-hash every file of a published release against its manifest."""
    manifest = read_manifest(dest, licence_id, number)
    if manifest is None:
        raise NotFound(f"release {number} of licence {licence_id} is not published there "
                       "(no manifest.json)")
    report = VerifyReport()
    lock = threading.Lock()

    def one(entry: dict[str, Any]) -> None:
        relative = f"{release_folder(licence_id, int(entry['release']))}/{entry['path']}"
        found = dest.hash_file(relative, progress)
        with lock:
            report.files += 1
            if found is None:
                report.missing.append(relative)
            elif found.sha256 != entry["sha256"] or found.bytes != entry["bytes"]:
                report.mismatched.append(relative)
            else:
                report.bytes += found.bytes

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="release-verify") as pool:
        list(pool.map(one, manifest["files"]))
    csv_data = dest.read_bytes(f"{release_folder(licence_id, number)}/{MANIFEST_CSV}")
    if csv_data is None:
        report.missing.append(f"{release_folder(licence_id, number)}/{MANIFEST_CSV}")
    else:
        listed = sorted(r["path"] for r in csv.DictReader(io.StringIO(csv_data.decode())))
        if listed != sorted(e["path"] for e in manifest["files"]):
            report.mismatched.append(f"{release_folder(licence_id, number)}/{MANIFEST_CSV}")
    report.missing.sort()
    report.mismatched.sort()
    return report


def record_verification(services: Services, licence_id: int, number: int, ok: bool) -> None:
    """Keep the outcome of the last verification on the release row (if it is ours)."""
    with services.write_sessions.begin() as session:
        row = session.scalar(
            select(Release).where(Release.licence_pk == licence_id, Release.number == number)
        )
        if row is not None:
            row.verification = "passed" if ok else "failed"
            row.verified_at = utcnow()
