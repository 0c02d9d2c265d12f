"""The tables a release carries beside the images: clinical data and marks.

Each table is written twice, as CSV (one row per record, nested values as JSON text)
and as JSON (a list of objects), and every column is described in
``data_dictionary.csv``. What a licence lacks does not exist for its holder, here as on
every other door (docs/access.md):

* clinical tables (clients, episodes, events, screen reads, lesions, findings, image
  features, study links) only with the ``clinical`` scope;
* density only with ``density`` (and density keys are dropped from the ``raw`` source
  fields otherwise);
* marks only with ``marks``, as ``marks.csv``/``marks.json`` in each study's folder,
  beside the SRs they live in; without ``clinical`` they lose their outcome and
  pathology fields, as the marks API does.

Rows are limited to the release's clients, and the clients to the licence's cohort
version.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.access.scopes import Scope
from omipacs.annotations.search import search_marks
from omipacs.clinical.models import (
    Client,
    Density,
    Episode,
    Event,
    ImageFeature,
    Lesion,
    LesionFinding,
    ScreenRead,
    Site,
    StudyLink,
)
from omipacs.index.models import Base, Study
from omipacs.index.visibility import Visibility

_INTERNAL = {"pk", "client_pk", "episode_pk", "event_pk", "lesion_pk", "study_pk", "site_pk",
             "outcome_ref_episode_pk", "patient_pk", "record_sha256", "imported_at",
             "updated_at", "linked"}
"""Columns that are the index's own bookkeeping: replaced by readable keys or left out."""

#: What each table is, for the data dictionary.
TABLE_NOTES: dict[str, str] = {
    "clients": "one row per woman (pseudonymous client ID): facts and derived outcome",
    "episodes": "NBSS episodes of each client: type, dates, derived status and outcome",
    "events": "events of each episode (screening, assessment, biopsy, surgery, ...)",
    "screen_reads": "per-breast screening reads: opinion, equipment, reader pseudonyms",
    "lesions": "lesions of each episode by breast and NBSS lesion number",
    "findings": "what one event found on one lesion: opinions, pathology, receptors",
    "image_features": "technical and biological features of images",
    "study_links": "which client and episode each study belongs to, and how it was decided",
    "density": "breast density measurements per image or breast",
    "marks": "expert ROI marks (boxes in image pixels) and the SR each lives in",
}

#: Descriptions of columns whose meaning is not plain from the name.
COLUMN_NOTES: dict[str, str] = {
    "client_id": "pseudonymous client ID (the DICOM PatientID of her images)",
    "episode": "the NBSS episode ID of the row's episode",
    "event": "kind and order of the row's event within its episode (KIND#n)",
    "lesion": "breast and NBSS lesion number of the row's lesion (side:number)",
    "study_instance_uid": "pseudonymous Study Instance UID (the folder of the study)",
    "sop_instance_uid": "pseudonymous SOP Instance UID (the file name of the image)",
    "status": "derived status (docs/data-model.md, Outcomes)",
    "outcome": "derived outcome: N, B, M, CI, U (clients); N, NA, NAB, B, M, CI, CIP, MP"
               " (episodes)",
    "raw": "source fields the model does not name, after de-identification (JSON)",
    "site": "screening site code",
    "box": "col_min, row_min, col_max, row_max in image pixels",
    "frame": "frame number of a tomosynthesis image the mark is drawn on",
    "sr_uid": "SOP Instance UID of the SR the mark lives in (in the same study folder)",
    "client_outcome": "the client's outcome (only with the clinical scope)",
    "pathology": "the lesion's pathology (only with the clinical scope)",
}

_DENSITY_WORDS = ("density", "volpara", "vbd", "fgv", "birads")


@dataclass(frozen=True)
class TableFile:
    """A derived file of the release: its path and its bytes."""

    path: str
    data: bytes


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _columns(model: type[Base]) -> list[str]:
    return [c.key for c in model.__table__.columns if c.key not in _INTERNAL]


def _strip_density(raw: Any) -> Any:
    """``raw`` without keys that carry density (for licences without ``density``)."""
    if isinstance(raw, dict):
        return {k: _strip_density(v) for k, v in raw.items()
                if not any(w in str(k).lower() for w in _DENSITY_WORDS)}
    if isinstance(raw, list):
        return [_strip_density(v) for v in raw]
    return raw


def csv_lines(rows: Iterable[dict[str, Any]], columns: Sequence[str],
              per_write: int = 1000) -> Iterator[bytes]:
    """CSV with a header, ``per_write`` rows at a time; lists and objects as JSON text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        out = []
        for c in columns:
            v = row.get(c)
            if isinstance(v, list | dict | tuple):
                v = json.dumps(v, sort_keys=True, default=str)
            out.append("" if v is None else v)
        writer.writerow(out)
        if n % per_write == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode("utf-8")


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV with a header; lists and objects as JSON text."""
    return b"".join(csv_lines(rows, columns))


def to_json(rows: Sequence[dict[str, Any]]) -> bytes:
    """A JSON list, stable (sorted keys) so an unchanged table hashes the same."""
    return (json.dumps(list(rows), indent=1, sort_keys=True, default=str) + "\n").encode()


class _Tables:
    """Collects the tables and their dictionary entries."""

    def __init__(self, keep_density: bool) -> None:
        self.keep_density = keep_density
        self.files: list[TableFile] = []
        self.dictionary: list[dict[str, str]] = []

    def add(self, name: str, columns: list[str], rows: list[dict[str, Any]],
            folder: str = "clinical") -> None:
        if not self.keep_density:
            for row in rows:
                if "raw" in row:
                    row["raw"] = _strip_density(row["raw"])
        self.files.append(TableFile(f"{folder}/{name}.csv", to_csv(rows, columns)))
        self.files.append(TableFile(f"{folder}/{name}.json", to_json(rows)))
        self.describe(name, columns)

    def describe(self, name: str, columns: Iterable[str]) -> None:
        for c in columns:
            self.dictionary.append({
                "table": name, "column": c,
                "description": COLUMN_NOTES.get(c, ""), "table_description": TABLE_NOTES[name],
            })


def _rows(session: Session, model: type[Base], stmt: Any,
          keys: Callable[[Any], dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    columns = _columns(model)
    rows: list[dict[str, Any]] = []
    for row in session.execute(stmt):
        obj = row[0]
        doc = keys(row)
        doc.update({c: _plain(getattr(obj, c)) for c in columns})
        rows.append(doc)
    return columns, rows


def clinical_tables(
    session: Session, clients: Sequence[str], scopes: frozenset[Scope], study_uids: set[str]
) -> tuple[list[TableFile], list[dict[str, str]]]:
    """The clinical tables (and their dictionary rows) for ``clients``."""
    tables = _Tables(keep_density=Scope.DENSITY in scopes)
    if Scope.CLINICAL not in scopes and Scope.DENSITY not in scopes:
        return [], []
    wanted = sorted(set(clients))
    chunks = [wanted[i : i + 500] for i in range(0, len(wanted), 500)] or [[]]

    def collect(model: type[Base], build: Callable[[list[str]], Any],
                keys: Callable[[Any], dict[str, Any]], extra: list[str]) -> tuple[
                    list[str], list[dict[str, Any]]]:
        columns = _columns(model)
        rows: list[dict[str, Any]] = []
        for chunk in chunks:
            rows += _rows(session, model, build(chunk), keys)[1]
        rows.sort(key=lambda r: json.dumps(r, sort_keys=True, default=str))
        return extra + columns, rows

    if Scope.CLINICAL in scopes:
        cols, rows = collect(
            Client,
            lambda ch: select(Client, Site.code).outerjoin(Site, Client.site_pk == Site.pk)
            .where(Client.client_id.in_(ch)),
            lambda r: {"site": r[1] or ""}, ["site"],
        )
        tables.add("clients", cols, rows)
        ep_keys = ["client_id", "episode"]
        cols, rows = collect(
            Episode,
            lambda ch: select(Episode, Client.client_id).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1], "episode": r[0].nbss_episode_id}, ep_keys[:1],
        )
        tables.add("episodes", cols, rows)

        def ev_key(r: Any) -> dict[str, Any]:
            return {"client_id": r[1], "episode": r[2], "event": f"{r[0].kind}#{r[0].seq}"}

        cols, rows = collect(
            Event,
            lambda ch: select(Event, Client.client_id, Episode.nbss_episode_id)
            .join(Episode, Event.episode_pk == Episode.pk).join(Client)
            .where(Client.client_id.in_(ch)),
            ev_key, ["client_id", "episode", "event"],
        )
        tables.add("events", cols, rows)
        cols, rows = collect(
            ScreenRead,
            lambda ch: select(ScreenRead, Client.client_id, Episode.nbss_episode_id, Event.kind,
                              Event.seq)
            .join(Event, ScreenRead.event_pk == Event.pk)
            .join(Episode, Event.episode_pk == Episode.pk).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1], "episode": r[2], "event": f"{r[3]}#{r[4]}"},
            ["client_id", "episode", "event"],
        )
        tables.add("screen_reads", cols, rows)
        cols, rows = collect(
            Lesion,
            lambda ch: select(Lesion, Client.client_id, Episode.nbss_episode_id)
            .join(Episode, Lesion.episode_pk == Episode.pk).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1], "episode": r[2],
                       "lesion": f"{r[0].side}:{r[0].nbss_lesion_no}"},
            ["client_id", "episode", "lesion"],
        )
        tables.add("lesions", cols, rows)
        cols, rows = collect(
            LesionFinding,
            lambda ch: select(LesionFinding, Client.client_id, Episode.nbss_episode_id,
                              Lesion.side, Lesion.nbss_lesion_no, Event.kind, Event.seq)
            .join(Lesion, LesionFinding.lesion_pk == Lesion.pk)
            .join(Event, LesionFinding.event_pk == Event.pk)
            .join(Episode, Lesion.episode_pk == Episode.pk).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1], "episode": r[2], "lesion": f"{r[3]}:{r[4]}",
                       "event": f"{r[5]}#{r[6]}"},
            ["client_id", "episode", "lesion", "event"],
        )
        tables.add("findings", cols, rows)
        cols, rows = collect(
            ImageFeature,
            lambda ch: select(ImageFeature, Client.client_id).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1]}, ["client_id"],
        )
        rows = [r for r in rows if not r.get("study_instance_uid")
                or r["study_instance_uid"] in study_uids]
        tables.add("image_features", cols, rows)
        cols, rows = collect(
            StudyLink,
            lambda ch: select(StudyLink, Client.client_id, Study.study_instance_uid,
                              Episode.nbss_episode_id)
            .join(Client, StudyLink.client_pk == Client.pk)
            .join(Study, StudyLink.study_pk == Study.pk)
            .outerjoin(Episode, StudyLink.episode_pk == Episode.pk)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1], "study_instance_uid": r[2], "episode": r[3]},
            ["client_id", "study_instance_uid", "episode"],
        )
        rows = [r for r in rows if r["study_instance_uid"] in study_uids]
        tables.add("study_links", cols, rows)
    if Scope.DENSITY in scopes:
        cols, rows = collect(
            Density,
            lambda ch: select(Density, Client.client_id).join(Client)
            .where(Client.client_id.in_(ch)),
            lambda r: {"client_id": r[1]}, ["client_id"],
        )
        rows = [r for r in rows if not r.get("study_instance_uid")
                or r["study_instance_uid"] in study_uids]
        tables.add("density", cols, rows)
    return tables.files, tables.dictionary


MARK_COLUMNS = ["id", "client_id", "study_uid", "series_uid", "sop_uid", "frame", "laterality",
                "view_position", "box", "graphic_type", "omidb_mark_id", "finding_kind",
                "finding_code", "finding_meaning", "conspicuity", "mass_class", "benign_class",
                "features", "lesion_numbers", "reader", "sr_uid", "sr_path", "source"]
_CLINICAL_MARK_COLUMNS = ["pathology", "client_outcome"]


def mark_tables(
    session: Session,
    visibility: Visibility,
    scopes: frozenset[Scope],
    study_folder: Callable[[str, str], str],
    sr_paths: dict[str, str],
    studies: Iterable[str] | None = None,
) -> tuple[list[TableFile], list[dict[str, str]]]:
    """``marks.csv``/``marks.json`` in each study folder (only with ``marks``).

    Only marks whose SR is in the release are listed: the file names it (``sr_path``).
    ``studies``: only those studies' files (an incremental release remakes the studies
    the change feed names); None: every study's. The dictionary rows are the same.
    """
    if Scope.MARKS not in scopes:
        return [], []
    columns = MARK_COLUMNS + (_CLINICAL_MARK_COLUMNS if Scope.CLINICAL in scopes else [])
    by_study: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if studies is None:
        records = search_marks(session, limit=None, restrict=visibility)
    else:
        records = [r for uid in sorted(set(studies)) for r in search_marks(
            session, study_uid=uid, limit=None, restrict=visibility)]
    for record in records:
        if record.sr_uid not in sr_paths:
            continue
        doc = record.to_dict()
        doc["sr_path"] = sr_paths[record.sr_uid]
        doc = {c: doc.get(c) for c in columns}
        by_study[study_folder(record.client_id, record.study_uid)].append(doc)
    files: list[TableFile] = []
    for folder, rows in sorted(by_study.items()):
        rows.sort(key=lambda r: r["id"])
        files.append(TableFile(f"{folder}/marks.csv", to_csv(rows, columns)))
        files.append(TableFile(f"{folder}/marks.json", to_json(rows)))
    dictionary = [{"table": "marks", "column": c, "description": COLUMN_NOTES.get(c, ""),
                   "table_description": TABLE_NOTES["marks"]} for c in columns]
    return files, dictionary
