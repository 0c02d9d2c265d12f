"""The de-identification engine: one header in, a de-identified header out.

The ingest pipeline calls :meth:`Deidentifier.apply` on each instance from a source
that must be de-identified (the caller decides, from the origin). The header is a
pydicom data set read without its pixel data; elements that follow Pixel Data in the
file (Digital Signatures, trailing padding) are merged into it. The engine:

1. refuses data sets nested deeper than ``max_depth`` (:class:`InvalidInstance`);
2. decides whether the pixels can be published (:func:`quarantine_reason`);
3. derives the client pseudonym from the NHS number or the site-local ID, and the
   client's date offset; computes Patient's Age from the birth date if it is missing;
4. builds a *new* data set, element by element and item by item, applying the rule the
   :class:`~omipacs.deid.profile.Profile` gives each element (the input is not changed,
   apart from pydicom decoding raw elements in place on first access);
5. sets the marking attributes of PS3.15 E.1.1 item 6: Patient Identity Removed,
   De-identification Method, its Code Sequence (CID 7050) and Longitudinal Temporal
   Information Modified (PS3.3 C.7.1.1);
6. replaces the File Meta Information with a description of this application
   (E.1.1 item 7): only the version, SOP class, the *new* SOP instance UID and the
   transfer syntax are carried over, so Source/Sending AE titles and addresses go
   (the pipeline writes a zero preamble);
7. records the client in the identity map, if one is configured.

An instance that cannot be made safe is still returned de-identified, with
``quarantine_reason`` (or ``hold_reason``) set: the pipeline then holds the file *as
received* in quarantine instead of publishing it. That original is identifiable (a
person has to look at it), so the quarantine is owner-only, never served, and purged
after ``[deid] quarantine_retention_days`` (:mod:`omipacs.ingest.quarantine`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from omipacs.deid import actions
from omipacs.deid.codes import clean_code_item
from omipacs.deid.descriptors import is_safe_descriptor, looks_like_identifier
from omipacs.deid.keys import DeidKeys, load_keys
from omipacs.deid.nhs import find_nhs_number
from omipacs.deid.pixels import AllowEntry, BitMask, burned_in_reason, overlay_plan
from omipacs.deid.profile import DEFAULT_PROFILE, DICOM_UID_ROOT, Op, Option, Profile, Rule
from omipacs.deid.pseudonyms import (
    OLDEST_AGE,
    ClientPseudonym,
    age_string,
    aggregate_age,
    client_pseudonym,
    date_offset_days,
    device_pseudonym,
    parse_da,
    remap_uid,
    shift_date,
    shift_datetime,
    shift_time,
    study_key,
)
from omipacs.deid.trusted import check_pseudonymous_header
from omipacs.errors import InvalidInstance

if TYPE_CHECKING:
    from omipacs.config import Settings
    from omipacs.deid.identity import IdentityMap

logger = logging.getLogger(__name__)

MAX_DEPTH: Final = 32
"""Deepest sequence nesting accepted; real SR content trees stay well below 16."""

IMPLEMENTATION_CLASS_UID: Final = "2.25.56039215782721966537957968991317651347"
"""Implementation Class UID written into the File Meta Information of cleaned files."""
IMPLEMENTATION_VERSION_NAME: Final = "OMIPACS_DEID_1"


_AGE: Final = re.compile(r"^\d{3}[DWMY]$")
_DATE_SOURCES: Final = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


@dataclass(frozen=True)
class DeidResult:
    """The outcome of de-identifying one header."""

    dataset: Dataset
    """A new, de-identified data set (``file_meta`` attached when there is one)."""
    file_meta: FileMetaDataset
    """New File Meta Information for the cleaned instance (attached to ``dataset`` too).

    Transfer Syntax UID is carried over from the meta given to :meth:`Deidentifier.apply`;
    without one it is absent and the writer must choose."""
    client: ClientPseudonym
    """Who the instance belongs to, pseudonymously; ``client.linked`` tells the pipeline
    whether the NHS number linked it."""
    quarantine_reason: str | None
    """Why the instance must not be published (pixels may identify), or ``None``."""
    action_counts: Mapping[str, int] = field(default_factory=dict)
    """How many elements each operation touched, for logs (no values, no tags)."""
    hold_reason: str | None = None
    """Why the instance cannot be filed under a client safely (held, not stored), or
    ``None``. Unlike ``quarantine_reason``, a pixel review does not lift it."""
    pending: bool = False
    """The hold waits for its study: filed as soon as an object of the study links it."""
    study_keys: tuple[str, ...] = ()
    """Keyed hashes naming the instance's study (site + Study UID, site + accession)."""
    pixel_mask: BitMask | None = None
    """Bits to clear in every native pixel word (overlays hidden in unused bits), if any."""

    @property
    def publishable(self) -> bool:
        """True when the instance may go into the research archive."""
        return self.quarantine_reason is None and self.hold_reason is None


PENDING_LINK: Final = (
    "no NHS number and its study is not yet filed: held until an object of the study "
    "links it to a client"
)
STUDY_CONFLICT: Final = (
    "its NHS number or study identifiers disagree with the client its study is filed "
    "under: held for review (a study never gets two clients)"
)
NON_IMAGE_MODALITIES: Final = frozenset({"SR", "PR", "KO", "SEG", "REG", "RTSTRUCT", "DOC"})
"""Objects made about images by other systems (CAD, viewers, RIS): they often carry only
a local or RIS identifier, so without an NHS number they never define a study's client."""


def _text(ds: Dataset, keyword: str) -> str:
    """A top-level string value, "" when absent or unreadable."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - malformed input reads as absent here
        return ""
    return "" if value is None else str(value).strip()


def quarantine_reason(ds: Dataset, allow: Iterable[AllowEntry] = ()) -> str | None:
    """Why the pixel data of ``ds`` cannot be published, or ``None``.

    PS3.15 E.1.1 note 5 and the Clean Pixel Data Option (E.3.1): identification burned
    into the pixels must be removed, and omipacs does not edit what an image shows, so
    an image that may show burned-in text is quarantined
    (:func:`omipacs.deid.pixels.burned_in_reason`: YES, an unreadable value, or no
    explicit NO on a class that commonly burns text in, unless ``allow`` lists its
    class and manufacturer), as is one with Recognizable Visual Features YES.

    Reasons are fixed strings and never echo a value from the data set.
    """
    return burned_in_reason(ds, allow)


def check_depth(ds: Dataset, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`InvalidInstance` if sequences in ``ds`` nest deeper than ``limit``.

    Iterative, so a hostile nesting cannot exhaust the Python stack here. Items still in
    raw (undecoded) form are checked later, level by level, as they are decoded.
    """
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            raise InvalidInstance(f"sequences nested deeper than {limit} levels")
        for tag in list(current.keys()):
            elem = current.get_item(tag)
            if isinstance(elem, DataElement) and elem.VR == "SQ" and elem.value:
                stack.extend((item, depth + 1) for item in elem.value if isinstance(item, Dataset))


_VALUE_OPS: Final = frozenset({Op.PSEUDONYM, Op.REMAP_UID, Op.SHIFT_DATE, Op.HASH_DEVICE})
"""Operations that rewrite string values."""


@dataclass
class _Pass:
    """State of one :meth:`Deidentifier.apply` call (keeps the engine thread-safe)."""

    keys: DeidKeys
    profile: Profile
    client: ClientPseudonym
    offset_days: int
    max_depth: int
    oldest_age: int = OLDEST_AGE
    counts: Counter[str] = field(default_factory=Counter)
    retained_private: bool = False

    # -- data sets ---------------------------------------------------------------------

    def dataset(self, src: Dataset, depth: int) -> Dataset:
        if depth > self.max_depth:
            raise InvalidInstance(f"sequences nested deeper than {self.max_depth} levels")
        out = Dataset()
        kept_blocks: set[BaseTag] = set()
        coded = clean_code_item(src)
        for raw_tag in list(src.keys()):
            tag = Tag(raw_tag)
            if tag.is_private and tag.element < 0x1000:
                continue  # private creators: kept below only for kept blocks
            try:
                elem = src[tag]
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 - an undecodable element is dropped, not kept
                self.counts["unreadable"] += 1
                logger.debug("dropped undecodable element %s", tag)
                continue
            if tag in coded:
                self.counts["clean_code"] += 1
                out.add(DataElement(tag, elem.VR, coded[tag]))
                continue
            if tag.is_private:
                rule = self.profile.private_rule(tag, self._creator(src, tag))
            else:
                rule = self.profile.rule_for(tag, elem.VR)
            new = self.element(elem, rule, depth)
            if new is None:
                continue
            out.add(new)
            if tag.is_private:
                self.retained_private = True
                kept_blocks.add(Tag(tag.group, tag.element >> 8))
        for creator_tag in kept_blocks:
            out.add(DataElement(creator_tag, "LO", self._creator(src, creator_tag, exact=True)))
        return out

    @staticmethod
    def _creator(src: Dataset, tag: BaseTag, *, exact: bool = False) -> str | None:
        creator_tag = tag if exact else Tag(tag.group, tag.element >> 8)
        try:
            value = src.get(creator_tag)
        except Exception:  # noqa: BLE001 - an unreadable creator reserves nothing
            return None
        if value is None:
            return None
        value = value.value if isinstance(value, DataElement) else value
        return str(value).strip() if value is not None else None

    # -- elements ----------------------------------------------------------------------

    def element(self, elem: DataElement, rule: Rule, depth: int) -> DataElement | None:
        op = rule.op
        if elem.VR == "SQ" and op in (Op.KEEP, Op.DUMMY, Op.CLEAN):
            op = Op.RECURSE
        elif op in _VALUE_OPS and (elem.VR == "SQ" or isinstance(elem.value, bytes)):
            op = Op.REMOVE  # a value of the wrong kind (malformed VR) cannot be mapped
        self.counts[op.value] += 1
        if op is Op.REMOVE:
            return None
        if op is Op.KEEP:
            if elem.VR == "AS" and elem.value:
                return actions.map_values(elem, lambda v: aggregate_age(v, self.oldest_age))
            return DataElement(elem.tag, elem.VR, _copy_value(elem.value))
        if op is Op.EMPTY:
            return actions.empty_element(elem)
        if op is Op.RECURSE:
            if elem.VR != "SQ":
                return None
            items = [self.dataset(item, depth + 1) for item in elem.value]
            return DataElement(elem.tag, "SQ", Sequence(items))
        if op is Op.PSEUDONYM:
            return DataElement(elem.tag, elem.VR, self.client.client_id)
        if op is Op.DUMMY:
            dummy = actions.dummy_value(elem.VR)
            return None if dummy is None else DataElement(elem.tag, elem.VR, dummy)
        if op is Op.REMAP_UID:
            return actions.map_values(elem, self._uid)
        if op is Op.HASH_DEVICE:
            return actions.map_values(elem, lambda v: device_pseudonym(self.keys, v))
        if op is Op.SHIFT_DATE:
            return self._shift(elem)
        if op is Op.CLEAN:
            values = actions.string_values(elem)
            if rule.technical:
                safe = not any(looks_like_identifier(v) for v in values)
            else:
                safe = all(is_safe_descriptor(v) for v in values)
            if safe:
                return DataElement(elem.tag, elem.VR, _copy_value(elem.value))
            self.counts["clean_rejected"] += 1
            return self.element(elem, Rule(rule.fallback, rule.source), depth)
        return None  # pragma: no cover - every Op is handled above

    def _uid(self, uid: str) -> str:
        uid = uid.strip(" \x00")
        if uid.startswith(DICOM_UID_ROOT):
            return uid
        return remap_uid(self.keys, uid)

    def _shift(self, elem: DataElement) -> DataElement | None:
        shifters = {"DA": shift_date, "DT": shift_datetime, "TM": shift_time}
        shifter = shifters.get(elem.VR)
        if shifter is None:
            return None
        try:
            return actions.map_values(elem, lambda v: shifter(v, self.offset_days))
        except ValueError:
            self.counts["unparseable_date"] += 1
            return None


def _copy_value(value: object) -> object:
    """Values are immutable except multi-values, which are copied as lists."""
    return list(value) if isinstance(value, MultiValue | list) else value


class Deidentifier:
    """Applies the archive's de-identification profile to instance headers.

    Parameters
    ----------
    keys
        The archive's keys (:func:`omipacs.deid.keys.load_keys`).
    identity
        Where to record clients and the sites they came from; ``None`` records nothing.
    profile
        The profile to apply; :data:`~omipacs.deid.profile.DEFAULT_PROFILE` by default.
    max_depth
        Deepest sequence nesting accepted.
    burned_in_allow
        SOP classes and manufacturers published without BurnedInAnnotation NO
        (``[[deid.burned_in_allow]]``).
    oldest_age
        Ages above this many years, given or computed from the birth date, are written
        as one more (``090Y`` by default; ``[deid] oldest_age``).

    Notes
    -----
    Thread-safe: per-call state lives in a private object, and the identity map locks.
    """

    def __init__(
        self,
        keys: DeidKeys,
        identity: IdentityMap | None = None,
        *,
        profile: Profile = DEFAULT_PROFILE,
        max_depth: int = MAX_DEPTH,
        burned_in_allow: Iterable[AllowEntry] = (),
        oldest_age: int = OLDEST_AGE,
    ) -> None:
        self.keys = keys
        self.identity = identity
        self.profile = profile
        self.max_depth = max_depth
        self.burned_in_allow = tuple(burned_in_allow)
        self.oldest_age = oldest_age
        self.refuse: Callable[[ClientPseudonym], None] | None = None
        """Raises :class:`~omipacs.errors.Withdrawn` for a withdrawn client; called
        before anything is bound or recorded in the identity map (the archive wires in
        :meth:`omipacs.deid.tombstones.Tombstones.refuse_client`)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, environ: Mapping[str, str] = os.environ
    ) -> Deidentifier:
        """Load the keys and open the identity map named by ``settings``.

        Raises :class:`~omipacs.errors.ConfigurationError` when no key is configured.
        """
        from omipacs.deid.identity import open_identity_map

        keys = load_keys(settings.deid, environ)
        return cls(
            keys, open_identity_map(settings),
            burned_in_allow=settings.deid.burned_in_allow,
            oldest_age=settings.deid.oldest_age,
        )

    def client_for(
        self, header: Dataset, *, site: str = "", patient_id_is_nhs_number: bool = False
    ) -> ClientPseudonym:
        """The client pseudonym :meth:`apply` would give ``header``.

        Without a valid NHS number the local identifier is namespaced by ``site`` and the
        Issuer of Patient ID, so equal local IDs from two hospitals never merge. An empty
        Patient ID falls back to the Study (then SOP) Instance UID: one unlinked client per
        study rather than every anonymous patient of a site in one client.
        ``patient_id_is_nhs_number`` is the sending site's setting that its Patient ID
        is the NHS number (:func:`omipacs.deid.nhs.find_nhs_number`).
        """
        nhs_number = find_nhs_number(header, patient_id_is_nhs_number=patient_id_is_nhs_number)
        issuer = f"{site}|{_text(header, 'IssuerOfPatientID')}"
        local_id = _text(header, "PatientID")
        if not local_id:
            study = _text(header, "StudyInstanceUID")
            local_id = f"study:{study}" if study else f"sop:{_text(header, 'SOPInstanceUID')}"
        return client_pseudonym(self.keys, nhs_number, issuer, local_id)

    def apply(
        self,
        header: Dataset,
        file_meta: FileMetaDataset | None = None,
        *,
        site: str = "",
        patient_id_is_nhs_number: bool = False,
        allow_unlinked: bool = False,
    ) -> DeidResult:
        """De-identify one header.

        Parameters
        ----------
        header
            The instance without Pixel Data (elements after it merged in).
        file_meta
            The File Meta Information received with it; if ``None``, ``header.file_meta``
            is used when present.
        site
            The sending site (e.g. the calling AE title); recorded in the identity map
            and used to namespace local patient IDs.
        patient_id_is_nhs_number
            The site puts the NHS number in Patient ID without an issuer saying so.
        allow_unlinked
            An operator releases a held object: a non-image without an NHS number may
            define its study's client (normally it waits for the study's images).

        Raises
        ------
        InvalidInstance
            Sequences nest deeper than ``max_depth``.
        """
        check_depth(header, self.max_depth)
        if file_meta is None:
            file_meta = getattr(header, "file_meta", None)
        try:
            return self._apply(
                header, file_meta, site, patient_id_is_nhs_number, allow_unlinked
            )
        except RecursionError:
            raise InvalidInstance("sequences nested too deeply to decode") from None

    def check_pseudonymous(self, header: Dataset) -> None:
        """Refuse a header stored without de-identification that names a patient.

        See :func:`omipacs.deid.trusted.check_pseudonymous_header`.
        """
        check_pseudonymous_header(header, self.identity)

    def study_keys(self, header: Dataset, site: str) -> tuple[str, ...]:
        """Keyed hashes of (site, Study Instance UID) and (site, Accession Number)."""
        keys = []
        for kind, keyword in (("uid", "StudyInstanceUID"), ("accession", "AccessionNumber")):
            value = _text(header, keyword)
            if value:
                keys.append(study_key(self.keys, site, kind, value))
        return tuple(keys)

    def resolve_client(
        self, header: Dataset, own: ClientPseudonym, site: str, *, allow_unlinked: bool = False
    ) -> tuple[ClientPseudonym, str | None, bool, tuple[str, ...]]:
        """The client the instance is filed under, per study, and why it is held if it is.

        Returns ``(client, hold_reason, pending, study_keys)``:

        * a study already bound (site + Study Instance UID) keeps its client: an object
          without an NHS number joins it, one whose NHS number names another client is
          held as a conflict (a study never gets two clients or two date offsets);
        * a new study is bound to the client of an object that carries an NHS number, or
          of an image (whose identifiers come from the modality worklist);
        * a non-image without an NHS number (a CAD SR, a presentation state, a KOS with
          only a RIS number) of a study not yet bound joins the client its accession
          number (same site) is bound to, and is otherwise held pending, to be filed as
          soon as an object of its study arrives, rather than guessed.

        Without an identity map every instance is resolved on its own.
        """
        keys = self.study_keys(header, site)
        if self.identity is None or not keys:
            return own, None, False, keys
        uid = _text(header, "StudyInstanceUID")
        uid_key = study_key(self.keys, site, "uid", uid) if uid else ""
        acc_keys = [k for k in keys if k != uid_key]
        known = self.identity.study_clients([uid_key]) if uid_key else set()
        uid_bound = known
        if not known:
            modality = _text(header, "Modality").upper()
            is_image = "Rows" in header and modality not in NON_IMAGE_MODALITIES
            if not (own.linked or is_image):
                known = self.identity.study_clients(acc_keys)
                if not known and not allow_unlinked:
                    return own, PENDING_LINK, True, keys
        if len(known) > 1:
            return own, STUDY_CONFLICT, False, keys
        client = next(iter(known)) if known else own
        if own.linked and client != own:
            return own, STUDY_CONFLICT, False, keys
        # A study already bound to this client stays bound (bindings are only removed
        # with the client, whose tombstone then refuses her objects): no write needed.
        if uid_key and client not in uid_bound and client not in self.identity.bind_study(
            [uid_key], client
        ):
            return own, STUDY_CONFLICT, False, keys  # another object bound it meanwhile
        for key in self.identity.unbound(acc_keys):
            self.identity.bind_study([key], client)  # the first client an accession names
        return client, None, False, keys

    def _apply(
        self,
        header: Dataset,
        meta: FileMetaDataset | None,
        site: str,
        nhs_in_id: bool,
        allow_unlinked: bool,
    ) -> DeidResult:
        reason = quarantine_reason(header, self.burned_in_allow)
        syntax = _text(meta, "TransferSyntaxUID") if meta is not None else ""
        mask, overlay_reason = overlay_plan(header, syntax)
        reason = reason or overlay_reason
        own = self.client_for(header, site=site, patient_id_is_nhs_number=nhs_in_id)
        if self.refuse is not None:
            self.refuse(own)
        client, hold, pending, study_keys = self.resolve_client(
            header, own, site, allow_unlinked=allow_unlinked
        )
        if self.refuse is not None and client != own:
            self.refuse(client)
        offset = date_offset_days(self.keys, client.client_id)
        keeps_age = Option.RETAIN_PATIENT_CHARACTERISTICS in self.profile.options
        age = _patient_age(header) if keeps_age else None
        state = _Pass(
            self.keys, self.profile, client, offset, self.max_depth, self.oldest_age
        )
        out = state.dataset(header, 0)

        out.PatientName = client.client_id
        out.PatientID = client.client_id
        if age is not None:
            out.PatientAge = aggregate_age(age, self.oldest_age)
        self._mark(out, state.retained_private, mask is not None)
        new_meta = self._file_meta(meta, out, state)
        out.file_meta = new_meta
        if self.identity is not None and hold is None:
            self.identity.record(client, site)
        counts = MappingProxyType(dict(state.counts))
        logger.debug(
            "de-identified an instance of client %s (linked=%s, quarantine=%s, held=%s): %s",
            client.client_id, client.linked, reason is not None, hold is not None, dict(counts),
        )
        return DeidResult(
            out, new_meta, client, reason, counts, hold, pending, study_keys, mask
        )

    def _mark(self, out: Dataset, retained_private: bool, bits_cleared: bool) -> None:
        """Set the PS3.15 E.1.1 item 6 attributes and Longitudinal Temporal Info."""
        options = self.profile.method_codes(retained_private=retained_private)
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = method_text(
            self.profile, options, self.oldest_age, bits_cleared
        )
        items = []
        for option in options:
            code = option.code
            item = Dataset()
            item.CodeValue = code.value
            item.CodingSchemeDesignator = code.scheme_designator
            item.CodeMeaning = code.meaning
            items.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(items)
        dates_kept = Option.RETAIN_MODIFIED_DATES in self.profile.options
        out.LongitudinalTemporalInformationModified = "MODIFIED" if dates_kept else "REMOVED"

    def _file_meta(
        self, meta: FileMetaDataset | None, out: Dataset, state: _Pass
    ) -> FileMetaDataset:
        """New File Meta Information describing the cleaned instance (E.1.1 item 7)."""
        if meta is None:
            meta = FileMetaDataset()
        new = FileMetaDataset()
        new.FileMetaInformationVersion = b"\x00\x01"
        sop_class = _text(meta, "MediaStorageSOPClassUID") or _text(out, "SOPClassUID")
        if sop_class:
            new.MediaStorageSOPClassUID = UID(sop_class)
        sop_instance = _text(out, "SOPInstanceUID")
        if not sop_instance and _text(meta, "MediaStorageSOPInstanceUID"):
            sop_instance = state._uid(_text(meta, "MediaStorageSOPInstanceUID"))
        if sop_instance:
            new.MediaStorageSOPInstanceUID = UID(sop_instance)
        syntax = _text(meta, "TransferSyntaxUID")
        if syntax:
            new.TransferSyntaxUID = UID(syntax)
        new.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        new.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        carried = {"FileMetaInformationVersion", "MediaStorageSOPClassUID",
                   "MediaStorageSOPInstanceUID", "TransferSyntaxUID"}
        state.counts["meta_removed"] += sum(
            1 for tag in meta.keys()
            if Tag(tag).element != 0 and keyword_for_tag(tag) not in carried
        )
        return new


def method_text(
    profile: Profile, options: tuple[Option, ...], oldest_age: int, bits_cleared: bool
) -> list[str]:
    """De-identification Method (0012,0063): the codes, and what the codes do not say.

    Each value is at most 64 characters (LO).
    """
    text = [
        "PS3.15 E.1 Basic Application Confidentiality Profile",
        "Options " + " ".join(o.value for o in options[1:]) + " (omipacs)",
        "UIDs remapped with a keyed hash (2.25)",
    ]
    if Option.RETAIN_MODIFIED_DATES in profile.options:
        text.append("Dates shifted by one keyed offset per client")
    if Option.RETAIN_DEVICE_IDENTITY in profile.options:
        text.append("Device serials, stations, unit IDs: keyed pseudonyms")
    else:
        text.append("Device serials, stations and unit IDs removed")
    if Option.RETAIN_PATIENT_CHARACTERISTICS in profile.options:
        text.append(f"Ages over {oldest_age} given as {oldest_age + 1:03d}Y")
    text.append("Overlay and curve groups removed")
    if bits_cleared:
        text.append("Pixel bits outside Bits Stored cleared")
    return text


def _patient_age(header: Dataset) -> str | None:
    """Patient's Age to add: computed from the birth date when the header has none.

    PS3.15 E.1.1 item 3 allows adding Patient's Age as a replacement for the birth date
    (its own example). The first available of Study, Series, Acquisition and Content Date
    is the reference; the true dates are used, so the age is exact.
    """
    if _AGE.match(_text(header, "PatientAge")):
        return None
    birth = parse_da(_text(header, "PatientBirthDate"))
    if birth is None:
        return None
    for keyword in _DATE_SOURCES:
        on = parse_da(_text(header, keyword))
        if on is not None:
            return age_string(birth, on)
    return None
