"""Quarantine: instances that could not be made safe to publish, or not yet filed.

Two kinds of instance are held here instead of being indexed, each with a JSON note of
why, where it came from and when:

* an instance whose pixels may show the patient's identity (burned-in annotation, a
  class that can carry burned-in text without saying it is clean, overlay bits inside
  compressed pixel data), or whose identifiers disagree with the client its study is
  filed under: it waits for a person;
* an object without an NHS number (a CAD SR, a presentation state) whose study has no
  client yet: it is *pending*, and the pipeline files it as soon as an object of the same
  study is stored (:meth:`Quarantine.release_pending`), so it is never guessed onto a
  client of its own.

Nothing here is reachable through any query or endpoint; ``omipacs quarantine`` lists,
shows, releases (an operator has checked the pixels, or files a pending object under
its own unlinked client; the instance is then ingested normally, header de-identified)
or purges entries.

**The held file is the one received, so it is identifiable** (its header has not been
de-identified: a person has to look at it to decide). The directory is created with
mode 0700 and files 0600, no note records a UID or a patient value, and entries are
deleted after ``[deid] quarantine_retention_days`` by :meth:`Quarantine.purge_expired`,
which ``omipacs serve`` runs by itself.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from omipacs.dicom.parse import ParsedFile
from omipacs.errors import NotFound, OmipacsError
from omipacs.filemodes import private_dir
from omipacs.ingest.origin import IngestOrigin, OriginKind
from omipacs.ingest.result import IngestResult

log = logging.getLogger(__name__)

Refile = Callable[[Path, IngestOrigin], IngestResult]
"""Ingest a copy of a held file again (the pipeline's own entry point)."""

_RELEASING = ".releasing"
"""Suffix of a note whose entry is being filed (hidden from listings and other releases)."""


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
    pending_keys: list[str] = field(default_factory=list)
    """Keyed hashes of the study it waits for; empty unless pending."""

    @property
    def pending(self) -> bool:
        """True when the entry waits for its study rather than for a person."""
        return bool(self.pending_keys)

    def ingest_origin(self, *, pixels_reviewed: bool = False,
                      allow_unlinked: bool = False) -> IngestOrigin:
        """The origin to ingest the held file with again (as it first came in)."""
        return IngestOrigin(
            OriginKind(self.origin),
            ae_title=self.source_ae_title,
            deidentify=self.deidentify,
            patient_id_is_nhs_number=self.patient_id_is_nhs_number,
            pixels_reviewed=pixels_reviewed,
            allow_unlinked=allow_unlinked,
        )


class Quarantine:
    """The quarantine directory under the storage root."""

    def __init__(self, root: Path) -> None:
        self.dir = private_dir(Path(root) / "quarantine")

    def hold(
        self,
        spooled: Path,
        parsed: ParsedFile,
        reason: str,
        origin: IngestOrigin,
        pending_keys: tuple[str, ...] = (),
    ) -> None:
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
            pending_keys=list(pending_keys),
        )
        dest = self.dir / f"{entry.id}.dcm"
        shutil.move(str(spooled), dest)
        os.chmod(dest, 0o600)
        self._write_note(entry)

    def _write_note(self, entry: QuarantineEntry) -> None:
        note = self.dir / f"{entry.id}.json"
        tmp = note.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(entry), f, indent=2)
        os.replace(tmp, note)

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
        self._delete(entry.id)

    def claim(self, entry_id: str) -> bool:
        """Take an entry out of listings and releases while it is being filed.

        False if it is gone or another release holds it. Follow with :meth:`discard`
        once filed, or :meth:`unclaim` to hold it again.
        """
        note = self.dir / f"{entry_id}.json"
        try:
            os.rename(note, note.with_name(note.name + _RELEASING))
        except FileNotFoundError:
            return False
        return True

    def unclaim(self, entry_id: str) -> None:
        """Hold a claimed entry again (its filing failed)."""
        note = self.dir / f"{entry_id}.json"
        os.rename(note.with_name(note.name + _RELEASING), note)

    def discard(self, entry_id: str) -> None:
        """Delete an entry's file and note, claimed or not (nothing if already gone)."""
        self._delete(entry_id)

    def _delete(self, entry_id: str) -> None:
        (self.dir / f"{entry_id}.dcm").unlink(missing_ok=True)
        (self.dir / f"{entry_id}.json").unlink(missing_ok=True)
        (self.dir / f"{entry_id}.json{_RELEASING}").unlink(missing_ok=True)

    def release_pending(self, study_keys: tuple[str, ...], refile: Refile) -> int:
        """File the pending entries waiting for any of ``study_keys``; how many were.

        ``refile(path, origin)`` ingests a copy of the held file. The note is renamed
        while its entry is filed, so a release triggered by that very ingest (or by
        another thread) does not take it twice; an entry whose filing fails is put back
        and stays held (it was acknowledged, so it must not be lost).
        """
        wanted = set(study_keys)
        released = 0
        for entry in self.entries():
            if not wanted.intersection(entry.pending_keys):
                continue
            if not self.claim(entry.id):
                continue  # another release took it
            try:
                refile(self.dir / f"{entry.id}.dcm", entry.ingest_origin())
            except (OmipacsError, OSError) as exc:
                log.warning("pending quarantine entry %s could not be filed: %s", entry.id,
                            getattr(exc, "reason", "storage error"))
                self.unclaim(entry.id)
                continue
            self._delete(entry.id)
            released += 1
        return released

    def release(self, entry_id: str, refile: Refile) -> tuple[QuarantineEntry, IngestResult]:
        """File an entry a person has reviewed; returns it with the ingest's result.

        The pixels were looked at, so the burned-in-text hold is lifted (the header is
        still de-identified as on first arrival); a pending entry released by hand is
        filed under its own unlinked client. The entry is claimed while it is filed, so
        two curators releasing it at once file it once (the second gets NotFound), and
        put back when filing fails, so nothing acknowledged is lost. A release that is
        held again (a link conflict) comes back as a new entry.
        """
        entry = self.get(entry_id)
        if not self.claim(entry.id):
            raise NotFound("the quarantine entry is being released already")
        origin = entry.ingest_origin(pixels_reviewed=True, allow_unlinked=entry.pending)
        try:
            result = refile(self.dir / f"{entry.id}.dcm", origin)
        except BaseException:
            self.unclaim(entry.id)
            raise
        self._delete(entry.id)
        return entry, result

    def purge_expired(self, max_age_seconds: float, now: float | None = None) -> int:
        """Delete entries held longer than ``max_age_seconds``; how many were deleted.

        The retention limit of identifiable originals: what nobody reviewed in time is
        not kept. Stray files (a note without its file, a half-written note) older than
        the limit go too.
        """
        now = time.time() if now is None else now
        removed = 0
        for entry in self.entries():
            if now - entry.held_at >= max_age_seconds:
                self._delete(entry.id)
                removed += 1
        for stray in self.dir.iterdir():
            try:
                if stray.is_file() and now - stray.stat().st_mtime >= max_age_seconds:
                    stray.unlink()
            except FileNotFoundError:
                continue
        return removed

