"""The one ingest pipeline behind C-STORE, STOW-RS, ``omipacs import`` and the demo.

parse -> validate -> de-identify -> hash -> store bytes -> index (one transaction) -> result.

Durability order (docs/architecture.md): the blob is fsynced and renamed into place, then
the index row is committed, then the caller acknowledges. A crash between the two
leaves an orphan blob (found and removed by ``omipacs verify``), never an index row
without bytes. Everything is streamed from the spool file: the header is parsed without
the pixels and the pixels are only ever copied in bounded chunks.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pydicom.dataset import Dataset, FileMetaDataset
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from omipacs.blobs.base import BlobStore
from omipacs.blobs.spool import Spool, hash_file, hash_stream, zero_preamble
from omipacs.dicom import json as dicom_json
from omipacs.dicom.frames import frame_table
from omipacs.dicom.parse import ParsedFile, parse_file
from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import DuplicateInstance, OmipacsError, OutOfResources, Quarantined
from omipacs.index import repository
from omipacs.index.changes import ChangeKind, record_change
from omipacs.index.extract import extract
from omipacs.ingest.origin import IngestOrigin
from omipacs.ingest.quarantine import Refile
from omipacs.ingest.result import IngestOutcome, IngestResult
from omipacs.ingest.rewrite import PixelWordCleaner, Written, rewrite
from omipacs.ingest.validate import MAX_FRAME_BYTES, validate

log = logging.getLogger(__name__)


class CleanedHeader(Protocol):
    """What a de-identification stage returns."""

    @property
    def dataset(self) -> Dataset: ...

    @property
    def file_meta(self) -> FileMetaDataset: ...

    @property
    def quarantine_reason(self) -> str | None: ...

    @property
    def hold_reason(self) -> str | None: ...

    @property
    def pending(self) -> bool: ...

    @property
    def study_keys(self) -> tuple[str, ...]: ...

    @property
    def pixel_mask(self) -> PixelWordCleaner | None: ...


class HeaderCleaner(Protocol):
    """The de-identification stage: cleans a header (never sees the pixel bytes)."""

    def apply(
        self,
        header: Dataset,
        file_meta: FileMetaDataset,
        *,
        site: str = "",
        patient_id_is_nhs_number: bool = False,
        allow_unlinked: bool = False,
    ) -> CleanedHeader: ...

    def check_pseudonymous(self, header: Dataset) -> None: ...


class QuarantineSink(Protocol):
    """Where instances that cannot be made safe, or not yet filed, are held."""

    def hold(
        self,
        spooled: Path,
        parsed: ParsedFile,
        reason: str,
        origin: IngestOrigin,
        pending_keys: tuple[str, ...] = (),
    ) -> None: ...

    def release_pending(self, study_keys: tuple[str, ...], refile: Refile) -> int: ...


class WithdrawalCheck(Protocol):
    """The withdrawal tombstone (:class:`omipacs.deid.tombstones.Tombstones`)."""

    def refuse(self, session: Session, client_id: str, identity_key_hash: str = "") -> None: ...


class InstanceIndexer(Protocol):
    """Extra indexing of a newly stored instance, in the same transaction as its row.

    Used for content that lives inside objects, such as ROI marks in SR documents. An
    indexer must not raise for content it cannot read (log it and return): the instance
    itself has been accepted.
    """

    def index(self, session: Session, parsed: ParsedFile, instance_pk: int) -> None: ...


@dataclass
class IngestPipeline:
    """Stores instances durably and indexes them. Thread-safe: one per process."""

    blobs: BlobStore
    spool: Spool
    write_sessions: sessionmaker[Session]
    max_instance_bytes: int = 4 * 1024**3
    max_frame_bytes: int = MAX_FRAME_BYTES
    """Largest decoded frame accepted (Rows x Columns x samples x bits, checked against
    the codec stream's own header), so no retrieval can be made to decode more."""
    min_free_bytes: int = 0
    """Free space kept on the storage filesystem: below it, ingest is refused with
    OutOfResources (0xA700, 507) while reads, the index and the logs keep working."""
    presync: bool = True
    """Flush the file to disk in the background while it is being hashed, so that the
    blob store's fsync before the acknowledgement finds little left to write."""
    cleaner: HeaderCleaner | None = None
    quarantine: QuarantineSink | None = None
    indexers: list[InstanceIndexer] = field(default_factory=list)
    tombstones: WithdrawalCheck | None = None
    """Refuses instances of withdrawn clients, in the transaction that would index them
    (after the change feed's lock, so a withdrawal committing meanwhile is seen)."""

    def check_space(self, incoming: int = 0) -> None:
        """Refuse (OutOfResources) if storing ``incoming`` more bytes would eat into the
        free-space reserve. Doors call it before reading a body when they know its size."""
        if self.min_free_bytes and self.spool.free_bytes() < self.min_free_bytes + incoming:
            raise OutOfResources("storage is full (below its free-space reserve); retry later")

    def ingest_stream(self, src: BinaryIO, origin: IngestOrigin) -> IngestResult:
        """Ingest bytes from a stream (copied into the spool first)."""
        self.check_space()
        return self.ingest_spooled(self.spool.copy_in(src), origin)

    def ingest_file(self, path: Path, origin: IngestOrigin) -> IngestResult:
        """Ingest a file the archive does not own (``omipacs import``): it is copied."""
        with open(path, "rb") as src:
            return self.ingest_stream(src, origin)

    def ingest_spooled(self, path: Path, origin: IngestOrigin) -> IngestResult:
        """Ingest a file the archive owns (spool); the file is consumed either way."""
        made: list[Path] = [Path(path)]
        try:
            return self._ingest(Path(path), origin, made)
        except OSError as exc:
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise OutOfResources("storage is full") from None
            raise
        finally:
            for p in made:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass

    def _ingest(self, path: Path, origin: IngestOrigin, made: list[Path]) -> IngestResult:
        # Already spooled; de-identification writes one more copy before the rename.
        self.check_space(os.path.getsize(path) if origin.deidentify else 0)
        zero_preamble(path)
        parsed = parse_file(path)
        try:
            return self._checked(path, parsed, origin, made)
        except OmipacsError as exc:
            raise exc.about(*_identity(parsed)) from exc.__cause__

    def _checked(
        self, path: Path, parsed: ParsedFile, origin: IngestOrigin, made: list[Path]
    ) -> IngestResult:
        validate(parsed, origin, self.max_instance_bytes, self.max_frame_bytes)
        if not origin.deidentify and origin.require_pseudonymous and self.cleaner is not None:
            self.cleaner.check_pseudonymous(parsed.dataset)
        if origin.deidentify and self.cleaner is not None:
            cleaned = self.cleaner.apply(
                parsed.dataset,
                parsed.file_meta,
                site=origin.ae_title,
                patient_id_is_nhs_number=origin.patient_id_is_nhs_number,
                allow_unlinked=origin.allow_unlinked,
            )
            # A link hold is never lifted by a pixel review; a pixel hold is.
            hold = cleaned.hold_reason
            if hold is None and not origin.pixels_reviewed:
                hold = cleaned.quarantine_reason
            if hold:
                if self.quarantine is None:
                    raise Quarantined(hold)
                pending = cleaned.study_keys if cleaned.pending else ()
                self.quarantine.hold(path, parsed, hold, origin, pending)
                made.remove(path)  # the quarantine owns it now
                return IngestResult(
                    IngestOutcome.QUARANTINED,
                    str(parsed.dataset.SOPClassUID),
                    "",
                    "",
                    "",
                    parsed.file_size,
                    "",
                    hold,
                    received_sop_instance_uid=_identity(parsed)[1],
                )
            clean_path = self.spool.new_path()
            made.append(clean_path)
            written = rewrite(
                parsed, cleaned.file_meta, cleaned.dataset, clean_path, cleaned.pixel_mask
            )
            # Parsed again from what was written: the index describes the stored bytes.
            parsed = parse_file(clean_path)
            result = self._store(clean_path, parsed, origin, made, written)
            if self.quarantine is not None and cleaned.study_keys:
                # Objects of this study that waited for it to be filed can follow now.
                self.quarantine.release_pending(cleaned.study_keys, self._refile)
            return result
        return self._store(path, parsed, origin, made)

    def _refile(self, held: Path, origin: IngestOrigin) -> IngestResult:
        """Ingest a copy of a held file (the quarantine keeps its own until this succeeds)."""
        with open(held, "rb") as src:
            return self.ingest_stream(src, origin)

    def _store(
        self,
        path: Path,
        parsed: ParsedFile,
        origin: IngestOrigin,
        made: list[Path],
        written: Written | None = None,
    ) -> IngestResult:
        """Store ``path`` and index it; ``written`` is its hash if its writer made one."""
        ds = parsed.dataset
        if written is not None:
            sha, size = written.sha256, written.size
        else:
            flusher = _start_flush(path) if self.presync else None
            try:
                sha, size = hash_file(path)
            finally:
                if flusher is not None:
                    flusher.join()
        sop_uid = str(ds.SOPInstanceUID)
        result = IngestResult(
            IngestOutcome.STORED,
            str(ds.SOPClassUID),
            sop_uid,
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            size,
            sha,
        )

        with self.write_sessions() as session:
            existing = repository.find_instance(session, sop_uid)
        if existing is not None:
            with open(path, "rb") as new:
                return self._same_or_conflict(existing, new, parsed.dataset_offset, result)

        facts = extract(ds)
        metadata = self._metadata(parsed)
        key = self.blobs.put_file(path)
        made.remove(path)
        storage: dict[str, Any] = {
            "transfer_syntax_uid": parsed.transfer_syntax,
            "blob_key": key,
            "size_bytes": size,
            "sha256": sha,
            "dataset_offset": parsed.dataset_offset,
            "source_ae_title": origin.ae_title[:16],
            "source_kind": origin.kind.value,
        }
        try:
            with self.write_sessions.begin() as session:
                existing = repository.find_instance(session, sop_uid)
                if existing is None:
                    pk = repository.add_instance(session, facts, storage=storage, metadata=metadata)
                    self._record(session, pk, result, str(facts.patient["patient_id"]))
                    for indexer in self.indexers:
                        indexer.index(session, parsed, pk)
        except IntegrityError:
            # A concurrent sender stored the same SOP Instance UID first (PostgreSQL).
            with self.write_sessions() as session:
                existing = repository.find_instance(session, sop_uid)
            if existing is None:
                self._discard(key)
                raise
        except BaseException:
            self._discard(key)
            raise
        if existing is not None:
            try:
                with self.blobs.open(key) as new:
                    return self._same_or_conflict(existing, new, parsed.dataset_offset, result)
            finally:
                self._discard(key)
        return result

    def _record(
        self, session: Session, pk: int, result: IngestResult, sent_client: str
    ) -> None:
        """The change feed's event for a new instance (before the events of what is
        indexed from it, such as its marks), then the tombstone check: the feed's lock,
        taken first, orders the check against a withdrawal writing its tombstone."""
        client = repository.client_of_instance(session, pk)
        record_change(
            session,
            ChangeKind.INSTANCE_STORED,
            study_uid=result.study_instance_uid,
            series_uid=result.series_instance_uid,
            sop_uid=result.sop_instance_uid,
            client_id=client,
        )
        if self.tombstones is not None:
            for client_id in {client, sent_client} - {""}:
                self.tombstones.refuse(session, client_id)

    def _same_or_conflict(
        self,
        existing: repository.StoredInstance,
        new: BinaryIO,
        new_offset: int,
        result: IngestResult,
    ) -> IngestResult:
        """Same UID as a stored instance: equal data set bytes, or a conflict.

        Compared only when a UID repeats (a retry), so the common path hashes once.
        """
        new_hash, _ = hash_stream(new, new_offset)
        with self.blobs.open(existing.blob_key) as old:
            old_hash, _ = hash_stream(old, existing.dataset_offset)
        if new_hash != old_hash:
            raise DuplicateInstance(
                "an instance with this SOP Instance UID and different content is already "
                "stored; the stored copy is kept"
            )
        return IngestResult(
            IngestOutcome.ALREADY_STORED,
            result.sop_class_uid,
            result.sop_instance_uid,
            existing.study_instance_uid,
            existing.series_instance_uid,
            existing.size_bytes,
            existing.sha256,
        )

    def _discard(self, key: str) -> None:
        try:
            self.blobs.delete(key)
        except OSError:
            log.warning(
                "could not remove blob %s after a failed index write; "
                "omipacs verify will report it as an orphan",
                key,
            )

    @staticmethod
    def _metadata(parsed: ParsedFile) -> dict[str, Any]:
        pixel = parsed.pixel
        frames = frame_table(parsed.dataset, pixel) if pixel is not None else None
        doc = dicom_json.instance_json(
            parsed.dataset,
            transfer_syntax=parsed.transfer_syntax,
            pixel_tag=pixel.tag if pixel is not None else None,
            pixel_vr=pixel.vr if pixel is not None else None,
        )
        pixel_doc = None
        if pixel is not None:
            pixel_doc = {
                "tag": pixel.tag,
                "vr": pixel.vr,
                "encapsulated": pixel.encapsulated,
                "element": [pixel.element_offset, pixel.element_end - pixel.element_offset],
                "value": [pixel.value.offset, pixel.value.length] if pixel.value else None,
            }
        return {
            "dicom_json": dicom_json.pack(doc),
            "frames": frames,
            "pixel": pixel_doc,
            "header_length": pixel.element_offset if pixel is not None else parsed.file_size,
        }


def _flush(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("background flush of %s failed; the store's fsync will retry", path)
    finally:
        os.close(fd)


def _start_flush(path: Path) -> threading.Thread:
    """fsync ``path`` in a thread (it releases the GIL) while the caller hashes it."""
    thread = threading.Thread(target=_flush, args=(path,), name="presync", daemon=True)
    thread.start()
    return thread


def _identity(parsed: ParsedFile) -> tuple[str, str]:
    """The instance's (SOP class, SOP instance) UIDs as received, if both are valid."""
    ds = parsed.dataset
    try:
        cls = str(ds.get("SOPClassUID", "") or "")
        uid = str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # a malformed value: the error itself says what is wrong
        return "", ""
    return (cls, uid) if is_valid_uid(cls) and is_valid_uid(uid) else ("", "")


def reject_reason(exc: BaseException) -> str:
    """A reason safe to show a peer: ours verbatim, anything else generic (no internals)."""
    if isinstance(exc, OmipacsError):
        return exc.reason
    return "processing failure"
