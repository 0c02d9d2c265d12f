"""Quarantine: instances that could not be made safe to publish, held for a person.

An instance whose pixels may show the patient's identity (burned-in annotation, a
secondary capture that does not say it is clean) is never indexed. Its file is moved
here with a JSON note of why, where it came from and when. Nothing here is reachable
through any query or endpoint; ``omipacs quarantine`` lists, shows, releases (an
operator has checked the pixels; the instance is then ingested normally, header
de-identified) or purges entries.

The held file is the one received, so it is identifiable: the directory is created
with mode 0700 and files 0600, and ``purge`` deletes them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from omipacs.dicom.parse import ParsedFile
from omipacs.errors import NotFound
from omipacs.filemodes import private_dir
from omipacs.ingest.origin import IngestOrigin


@dataclass(frozen=True)
class QuarantineEntry:
    """One held instance (no identifying values: UIDs are not recorded either)."""

    id: str
    reason: str
    origin: str
    source_ae_title: str
    sop_class_uid: str
    size: int
    held_at: float
    deidentify: bool
    patient_id_is_nhs_number: bool = False


class Quarantine:
    """The quarantine directory under the storage root."""

    def __init__(self, root: Path) -> None:
        self.dir = private_dir(Path(root) / "quarantine")

    def hold(self, spooled: Path, parsed: ParsedFile, reason: str, origin: IngestOrigin) -> None:
        """Move ``spooled`` into quarantine with its reason (the pipeline's sink)."""
        entry = QuarantineEntry(
            id=uuid.uuid4().hex,
            reason=reason,
            origin=origin.kind.value,
            source_ae_title=origin.ae_title,
            sop_class_uid=str(parsed.dataset.get("SOPClassUID", "")),
            size=parsed.file_size,
            held_at=time.time(),
            deidentify=origin.deidentify,
            patient_id_is_nhs_number=origin.patient_id_is_nhs_number,
        )
        dest = self.dir / f"{entry.id}.dcm"
        shutil.move(str(spooled), dest)
        os.chmod(dest, 0o600)
        note = self.dir / f"{entry.id}.json"
        note.write_text(json.dumps(asdict(entry), indent=2))
        os.chmod(note, 0o600)

    def entries(self) -> list[QuarantineEntry]:
        """Every held instance, oldest first."""
        found = []
        for note in self.dir.glob("*.json"):
            try:
                found.append(QuarantineEntry(**json.loads(note.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda e: e.held_at)

    def get(self, entry_id: str) -> QuarantineEntry:
        """One entry by id."""
        for entry in self.entries():
            if entry.id == entry_id:
                return entry
        raise NotFound("no such quarantine entry")

    def path(self, entry_id: str) -> Path:
        """The held file of an entry."""
        return self.dir / f"{self.get(entry_id).id}.dcm"

    def purge(self, entry_id: str) -> None:
        """Delete a held instance and its note."""
        entry = self.get(entry_id)
        (self.dir / f"{entry.id}.dcm").unlink(missing_ok=True)
        (self.dir / f"{entry.id}.json").unlink(missing_ok=True)
