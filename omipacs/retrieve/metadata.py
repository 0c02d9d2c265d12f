"""WADO-RS ``/metadata``: the DICOM JSON stored at ingest, never a file parse.

Bulk data references are stored relative to their instance (``bulkdata/...``) and made
absolute here with the base URL the client used, which depends on the reverse proxy in
front of the archive.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.dicom import json as dicom_json
from omipacs.index.models import InstanceMetadata
from omipacs.retrieve.locate import InstanceLocation

BATCH = 200


def instance_url(base: str, loc: InstanceLocation) -> str:
    """Absolute WADO-RS URL of an instance."""
    return f"{base}/studies/{loc.study_uid}/series/{loc.series_uid}/instances/{loc.sop_uid}"


def _absolutise(doc: dict[str, Any], prefix: str) -> dict[str, Any]:
    for value in doc.values():
        uri = value.get("BulkDataURI")
        if uri is not None and uri.startswith(dicom_json.BULK_PREFIX):
            value["BulkDataURI"] = f"{prefix}/{uri}"
        for item in value.get("Value", ()) if value.get("vr") == "SQ" else ():
            _absolutise(item, prefix)
    return doc


def iter_metadata(
    session: Session, locations: Sequence[InstanceLocation], base: str
) -> Iterator[dict[str, Any]]:
    """DICOM JSON of each instance, bulk data URIs absolute, read in batches."""
    for start in range(0, len(locations), BATCH):
        batch = locations[start : start + BATCH]
        rows = dict(
            session.execute(
                select(InstanceMetadata.instance_pk, InstanceMetadata.dicom_json).where(
                    InstanceMetadata.instance_pk.in_([loc.pk for loc in batch])
                )
            ).all()
        )
        for loc in batch:
            yield _absolutise(dicom_json.unpack(rows[loc.pk]), instance_url(base, loc))


def metadata_json(session: Session, locations: Sequence[InstanceLocation], base: str) -> bytes:
    """The whole ``/metadata`` response body (a JSON array), compact."""
    parts = [
        json.dumps(doc, separators=(",", ":")) for doc in iter_metadata(session, locations, base)
    ]
    return ("[" + ",".join(parts) + "]").encode()
