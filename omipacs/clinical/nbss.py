"""Read one NBSS-style client record into typed, de-identified records.

The layout is OMI-DB's ``NBSS_<client>.json`` (docs/data-model.md, "Clinical model")::

    {"NHSNumber": "...", "Site": "...", "LocalID": "...", "IssuerOfPatientID": "...",
     "Ethnicity": "A", "IMDDecile": 3, "HighRisk": "N", "MutationGenes": ["BRCA1"],
     "Classification": "...",
     "<EpisodeID>": {"EpisodeType": "R", "EpisodeAction": "RR",
                     "EpisodeOpenedDate": "2016-03-01", ..., "StudyList": [UID, ...],
                     "SCREENING": {"L": {"DateTaken", "Opinion", "EquipmentMakeModel",
                                         "AgeAtScreening", "Readers"}, "R": {...},
                                   "left_opinion": "ON", "right_opinion": "ON"},
                     "OTHERSCREENING": {"<id>": {...as SCREENING...}},
                     "ASSESSMENT" | "CLINICAL" | "BIOPSYWIDE" | "BIOPSYFINE" | "SURGERY"
                     | "INTERVALCANCER": {"L": {"<lesionNo>": {finding fields}}, "R": ...,
                                          "left_opinion", "right_opinion",
                                          "dateperformed", "diagnosticsetoutcome"},
                     "LESION": {"L": {"<lesionNo>": {"LesionDescription", ...}}}},
     "DENSITY": [{"SOPInstanceUID", "Side", "VolumetricBreastDensity", ...}],
     "IMAGEFEATURES": [{"SOPInstanceUID", "Feature", "Value", ...}]}

Identity goes through the image pseudonyms (:mod:`omipacs.deid.pseudonyms`): the client
ID from a valid NHS number, else from the site, issuer and local ID exactly as
:meth:`omipacs.deid.engine.Deidentifier.client_for` forms it; every date is moved by the
client's :func:`~omipacs.deid.pseudonyms.date_offset_days`, and every UID by
:func:`~omipacs.deid.pseudonyms.remap_uid`, so a record lands on the same client, the
same studies and the same day gaps as her images. Free text is dropped, film readers and
episode IDs (which may embed the NHS number) are replaced by keyed pseudonyms, fields the
archive does not model are dropped unless allow-listed (``[deid] clinical_fields``), and
the true year is discarded unless asked for.

Anything that cannot be read faithfully (an unknown code in a field the archive
classifies or filters on, a date that is not a date, a malformed block) refuses the
whole record with :class:`~omipacs.errors.InvalidRecord`. Messages name the field and
where it is, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Final, TypeVar

from omipacs.clinical.classify import EpisodeFacts, EventFacts
from omipacs.clinical.codes import (
    DCIS_GRADES,
    DISEASE_GRADES,
    HER2_SCORES,
    INSITU_COMPONENTS,
    INVASIVE_COMPONENTS,
    INVASIVE_TYPES,
    LESION_POSITION,
    MALIGNANCY_TYPES,
    NBSS_EVENT_BLOCKS,
    OPINION_CODE,
    SIDES,
    EpisodeAction,
    EpisodeType,
    EventKind,
    LesionDescription,
    SideOpinion,
)
from omipacs.clinical.sanitize import Sanitizer, looks_like_free_text, parse_date
from omipacs.config import DeidSettings
from omipacs.deid.keys import DeidKeys
from omipacs.deid.nhs import normalise_nhs_number
from omipacs.deid.pseudonyms import (
    OLDEST_AGE,
    ClientPseudonym,
    client_pseudonym,
    date_offset_days,
    episode_pseudonym,
    remap_uid,
)
from omipacs.dicom.uids import is_valid_uid
from omipacs.errors import InvalidRecord

E = TypeVar("E", bound=StrEnum)

DEFAULT_KEEP_FIELDS: Final = DeidSettings().clinical_fields
"""Unmodelled fields kept by default (``[deid] clinical_fields``)."""

NHS_KEYS: Final = ("NHSNumber", "NhsNumber", "NHS_NUMBER", "NHSNo")
SITE_KEYS: Final = ("Site", "SiteCode")
LOCAL_ID_KEYS: Final = ("LocalID", "PatientID", "HospitalNumber")
ISSUER_KEY: Final = "IssuerOfPatientID"
_TOP_LEVEL: Final = frozenset(
    {*NHS_KEYS, *SITE_KEYS, *LOCAL_ID_KEYS, ISSUER_KEY, "ClientID", "Ethnicity",
     "IMDDecile", "HighRisk", "MutationGenes", "DENSITY", "IMAGEFEATURES"}
)
_EPISODE_FIELDS: Final = frozenset(
    {"EpisodeType", "EpisodeAction", "EpisodeOpenedDate", "EpisodeClosedDate",
     "EpisodeIsClosed", "ActualEpisodeOpenedYear", "IntervalCancerDateOfDiagnosis",
     "PatientAge", "EpisodeEndPoint", "StudyList", "LESION", "OTHERSCREENING",
     *NBSS_EVENT_BLOCKS}
)
_EVENT_FIELDS: Final = frozenset(
    {"l", "r", "left_opinion", "right_opinion", "dateperformed", "diagnosticsetoutcome"}
)
"""Event-level fields, compared in lower case (NBSS exports vary the case)."""
_READ_FIELDS: Final = frozenset(
    {"DateTaken", "Opinion", "EquipmentMakeModel", "AgeAtScreening", "Readers"}
)
_LESION_FIELDS: Final = frozenset(
    {"LesionDescription", "LesionPosition", "CystAspirated", "LesionNotes"}
)
_SHORT: Final = re.compile(r"^[A-Za-z0-9+\-_.]{1,16}$")
_SITE: Final = re.compile(r"^[A-Za-z0-9+\-_. ]{1,32}$")
_FEATURE: Final = re.compile(r"^[a-z0-9_\-]{1,32}$")
_EPISODE_ID: Final = re.compile(r"^[A-Za-z0-9_\-.]{1,32}$")
_DENSITY_GRADES: Final = {"1": "1", "2": "2", "3": "3", "4": "4",
                          "A": "1", "B": "2", "C": "3", "D": "4"}
TECHNICAL_FEATURES: Final = frozenset(
    {"blur", "motion", "artefact", "artifact", "positioning", "exposure", "collimation",
     "noise", "implant", "pectoral_muscle", "skin_fold"}
)
"""Features of how the image was taken; others are biological (in the breast)."""


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedRead:
    """One breast of a screening event."""

    side: str
    date_taken: date | None
    opinion: str | None
    equipment_make_model: str
    age_at_screening: int | None
    readers: tuple[str, ...]
    raw: dict[str, Any]


@dataclass(frozen=True)
class ParsedFinding:
    """What one event found on one lesion; ``values`` are :class:`LesionFinding` columns."""

    side: str
    lesion_no: str
    values: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True)
class ParsedEvent:
    """One event block."""

    kind: EventKind
    seq: int
    date_performed: date | None
    dates: tuple[date, ...]
    left_opinion: SideOpinion | None
    right_opinion: SideOpinion | None
    diagnostic_set_outcome: str
    reads: tuple[ParsedRead, ...]
    findings: tuple[ParsedFinding, ...]
    raw: dict[str, Any]


@dataclass(frozen=True)
class ParsedLesion:
    """A lesion of the ``LESION`` block (or one only named by a finding)."""

    side: str
    lesion_no: str
    description: LesionDescription | None
    position: str | None
    cyst_aspirated: bool | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class ParsedEpisode:
    """One NBSS episode."""

    nbss_id: str
    type: EpisodeType | None
    action: EpisodeAction | None
    opened_date: date | None
    closed_date: date | None
    is_closed: bool | None
    ic_diagnosis_date: date | None
    age_years: int | None
    actual_opened_year: int | None
    end_points: tuple[str, ...]
    study_uids: tuple[str, ...]
    events: tuple[ParsedEvent, ...]
    lesions: tuple[ParsedLesion, ...]
    raw: dict[str, Any]

    def facts(self) -> EpisodeFacts:
        """The episode as :mod:`omipacs.clinical.classify` sees it."""
        return EpisodeFacts(
            key=self.nbss_id,
            type=self.type,
            events=tuple(
                EventFacts(e.kind, e.left_opinion, e.right_opinion, e.dates)
                for e in self.events
            ),
            opened_date=self.opened_date,
            diagnosis_date=self.ic_diagnosis_date,
        )


@dataclass(frozen=True)
class ParsedDensity:
    """A density measurement of one image or breast."""

    study_uid: str
    sop_uid: str
    side: str
    algorithm: str
    measured_date: date | None
    vbd_pct: float | None
    fgv_cm3: float | None
    breast_vol_cm3: float | None
    density_grade: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class ParsedFeature:
    """A technical or biological image feature."""

    study_uid: str
    sop_uid: str
    side: str
    category: str
    feature: str
    value: str
    source: str


@dataclass(frozen=True)
class ParsedClient:
    """A whole client record, de-identified."""

    pseudonym: ClientPseudonym
    site: str
    ethnicity: str
    imd_decile: int | None
    high_risk: bool | None
    mutation_genes: tuple[str, ...]
    episodes: tuple[ParsedEpisode, ...]
    densities: tuple[ParsedDensity, ...] = ()
    features: tuple[ParsedFeature, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    dropped_fields: int = 0
    """Fields dropped as free text or identifying (a count, never the fields)."""

    @property
    def client_id(self) -> str:
        return self.pseudonym.client_id

    def sha256(self) -> str:
        """Hash of the de-identified content: equal for a re-sent identical record."""
        content = asdict(self)
        content["pseudonym"] = {"client_id": self.client_id, "linked": self.pseudonym.linked}
        content.pop("dropped_fields")
        text = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# -- identity --------------------------------------------------------------------------


def pseudonym_for(
    keys: DeidKeys, nhs_number: str, site: str, issuer: str, local_id: str
) -> ClientPseudonym | None:
    """The pseudonym the images of this woman get, or ``None`` without an identifier.

    A valid NHS number links; otherwise the site-local ID is namespaced by site and
    issuer as the de-identification engine does for a header without an NHS number.
    """
    number = normalise_nhs_number(nhs_number) if nhs_number else None
    if number is not None:
        return client_pseudonym(keys, number, "", "")
    if site and local_id:
        return client_pseudonym(keys, None, f"{site}|{issuer}", local_id)
    return None


def reader_pseudonym(keys: DeidKeys, code: str) -> str:
    """A keyed stand-in for a film reader's code: the same reader, the same pseudonym."""
    digest = hmac.new(keys.device_key, b"reader\x00" + code.strip().encode(), hashlib.sha256)
    return "RDR" + base64.b32encode(digest.digest()).decode("ascii")[:12]


# -- the reader --------------------------------------------------------------------------


class _Reader:
    """Parses one record; knows the client's keys, offset and where it is (for errors)."""

    def __init__(self, keys: DeidKeys, offset: int, keep_true_year: bool,
                 keep_fields: frozenset[str] = frozenset()) -> None:
        self.keys = keys
        self.offset = timedelta(days=offset)
        self.keep_true_year = keep_true_year
        self.sanitizer = Sanitizer(self.shift, keep_fields)
        self.where = "record"

    def fail(self, what: str) -> InvalidRecord:
        return InvalidRecord(f"{self.where}: {what}")

    def shift(self, value: date) -> date:
        return value + self.offset

    # scalar readers ------------------------------------------------------------------

    def date(self, data: Mapping[str, Any], key: str) -> date | None:
        value = data.get(key)
        if value in (None, ""):
            return None
        parsed = parse_date(value)
        if parsed is None:
            raise self.fail(f"{key} is not a date")
        try:
            return self.shift(parsed)
        except OverflowError:
            raise self.fail(f"{key} is out of range") from None

    def text(self, data: Mapping[str, Any], key: str, limit: int = 64) -> str:
        value = data.get(key)
        if value in (None, ""):
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise self.fail(f"{key} is not text")
        return str(value).strip()[:limit]

    def code(self, data: Mapping[str, Any], key: str, allowed: Iterable[str] | None = None,
             *, upper: bool = True, limit: int = 8) -> str | None:
        value = data.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise self.fail(f"{key} is not a code")
        text = str(value).strip()
        text = text.upper() if upper else text
        if allowed is not None:
            if text not in allowed:
                raise self.fail(f"{key} is not a known code")
        elif len(text) > limit or not _SHORT.match(text):
            raise self.fail(f"{key} is not a code")
        return text

    def enum(self, data: Mapping[str, Any], key: str, kind: type[E]) -> E | None:
        text = self.code(data, key, [m.value for m in kind])
        return None if text is None else kind(text)

    def opinion(self, data: Mapping[str, Any], key: str) -> str | None:
        value = self.code(data, key)
        if value is not None and not OPINION_CODE.match(value):
            raise self.fail(f"{key} is not a known opinion code")
        return value

    def codes(self, data: Mapping[str, Any], key: str,
              allowed: Iterable[str] | None = None) -> tuple[str, ...]:
        value = data.get(key)
        if value in (None, ""):
            return ()
        if isinstance(value, str):
            items: list[Any] = [v for v in re.split(r"[,;\s]+", value) if v]
        elif isinstance(value, list):
            items = value
        else:
            raise self.fail(f"{key} is not a list of codes")
        wanted = set(allowed) if allowed is not None else None
        out = []
        for item in items:
            if not isinstance(item, str | int) or isinstance(item, bool):
                raise self.fail(f"{key} is not a list of codes")
            text = str(item).strip().upper()
            if (wanted is not None and text not in wanted) or (
                wanted is None and not _SHORT.match(text)
            ):
                raise self.fail(f"{key} holds an unknown code")
            out.append(text)
        return tuple(out)

    def number(self, data: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
        value = data.get(key)
        if value in (None, ""):
            return None
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            raise self.fail(f"{key} is not a number") from None
        if not low <= number <= high:
            raise self.fail(f"{key} is out of range")
        return number

    def integer(self, data: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
        number = self.number(data, key, low, high)
        if number is None:
            return None
        if number != int(number):
            raise self.fail(f"{key} is not a whole number")
        return int(number)

    def age(self, data: Mapping[str, Any], key: str) -> int | None:
        """An age in years, over :data:`OLDEST_AGE` aggregated to one more (as images)."""
        years = self.integer(data, key, 0, 130)
        return None if years is None else min(years, OLDEST_AGE + 1)

    def flag(self, data: Mapping[str, Any], key: str) -> bool | None:
        value = data.get(key)
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().upper()
        if text in ("Y", "YES", "TRUE", "1"):
            return True
        if text in ("N", "NO", "FALSE", "0"):
            return False
        raise self.fail(f"{key} is not Y or N")

    def uid(self, value: Any, key: str) -> str:
        if value in (None, ""):
            return ""
        if not isinstance(value, str) or not is_valid_uid(value.strip()):
            raise self.fail(f"{key} is not a UID")
        return remap_uid(self.keys, value.strip())

    def block(self, value: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{what} is not an object")
        return value

    # structure ---------------------------------------------------------------------------

    def episode(self, nbss_id: str, data: Mapping[str, Any]) -> ParsedEpisode:
        self.where = f"episode {nbss_id}"
        year = self.integer(data, "ActualEpisodeOpenedYear", 1900, 2200)
        study_list = data.get("StudyList") or []
        if isinstance(study_list, str):
            study_list = [u for u in re.split(r"[,;\s]+", study_list) if u]
        if not isinstance(study_list, list):
            raise self.fail("StudyList is not a list")
        events: list[ParsedEvent] = []
        for block, kind in NBSS_EVENT_BLOCKS.items():
            if block in data and data[block] is not None:
                self.where = f"episode {nbss_id} {block}"
                events.append(self.event(kind, 0, self.block(data[block], block)))
        others = data.get("OTHERSCREENING")
        if others is not None:
            for seq, (_, screen) in enumerate(
                sorted(self.block(others, "OTHERSCREENING").items()), start=1
            ):
                self.where = f"episode {nbss_id} OTHERSCREENING {seq}"
                events.append(
                    self.event(EventKind.OTHER_SCREENING, seq, self.block(screen, "screen"))
                )
        self.where = f"episode {nbss_id} LESION"
        lesions = self.lesions(data.get("LESION"), events)
        self.where = f"episode {nbss_id}"
        return ParsedEpisode(
            nbss_id=nbss_id,
            type=self.enum(data, "EpisodeType", EpisodeType),
            action=self.enum(data, "EpisodeAction", EpisodeAction),
            opened_date=self.date(data, "EpisodeOpenedDate"),
            closed_date=self.date(data, "EpisodeClosedDate"),
            is_closed=self.flag(data, "EpisodeIsClosed"),
            ic_diagnosis_date=self.date(data, "IntervalCancerDateOfDiagnosis"),
            age_years=self.age(data, "PatientAge"),
            actual_opened_year=year if self.keep_true_year else None,
            end_points=self.codes(data, "EpisodeEndPoint"),
            study_uids=tuple(sorted({self.uid(u, "StudyList") for u in study_list} - {""})),
            events=tuple(events),
            lesions=lesions,
            raw=self.sanitizer.mapping(dict(data), _EPISODE_FIELDS),
        )

    def event(self, kind: EventKind, seq: int, data: Mapping[str, Any]) -> ParsedEvent:
        lowered = {str(k).lower(): v for k, v in data.items()}
        performed = self.date(lowered, "dateperformed")
        dates: set[date] = {performed} if performed else set()
        reads: list[ParsedRead] = []
        findings: list[ParsedFinding] = []
        for side in SIDES:
            side_data = data.get(side)
            if not side_data:
                continue
            side_block = self.block(side_data, side)
            if kind in (EventKind.SCREENING, EventKind.OTHER_SCREENING):
                read = self.read(side, side_block)
                reads.append(read)
                if read.date_taken:
                    dates.add(read.date_taken)
                continue
            for lesion_no, lesion_data in side_block.items():
                finding = self.finding(side, str(lesion_no), self.block(lesion_data, "lesion"))
                findings.append(finding)
                if finding.values.get("date_performed"):
                    dates.add(finding.values["date_performed"])
        return ParsedEvent(
            kind=kind,
            seq=seq,
            date_performed=performed or (min(dates) if dates else None),
            dates=tuple(sorted(dates)),
            left_opinion=self.enum(lowered, "left_opinion", SideOpinion),
            right_opinion=self.enum(lowered, "right_opinion", SideOpinion),
            diagnostic_set_outcome=self.code(lowered, "diagnosticsetoutcome", limit=16) or "",
            reads=tuple(reads),
            findings=tuple(findings),
            raw=self.sanitizer.mapping(
                {k: v for k, v in data.items() if str(k).lower() not in _EVENT_FIELDS}
            ),
        )

    def read(self, side: str, data: Mapping[str, Any]) -> ParsedRead:
        readers = data.get("Readers") or []
        if isinstance(readers, str):
            readers = [r for r in re.split(r"[,;]+", readers) if r.strip()]
        if not isinstance(readers, list):
            raise self.fail("Readers is not a list")
        return ParsedRead(
            side=side,
            date_taken=self.date(data, "DateTaken"),
            opinion=self.opinion(data, "Opinion"),
            equipment_make_model=self.text(data, "EquipmentMakeModel"),
            age_at_screening=self.age(data, "AgeAtScreening"),
            readers=tuple(reader_pseudonym(self.keys, str(r)) for r in readers),
            raw=self.sanitizer.mapping(dict(data), _READ_FIELDS),
        )

    def finding(self, side: str, lesion_no: str, data: Mapping[str, Any]) -> ParsedFinding:
        where = self.where
        self.where = f"{where} {side}{lesion_no}"
        values: dict[str, Any] = {
            column: read(self, data, key) for key, (column, read) in FINDING_FIELDS.items()
        }
        raw = self.sanitizer.mapping(dict(data), frozenset(FINDING_FIELDS))
        self.where = where
        return ParsedFinding(side, lesion_no, {k: v for k, v in values.items()
                                               if v not in (None, ())}, raw)

    def lesions(self, data: Any, events: list[ParsedEvent]) -> tuple[ParsedLesion, ...]:
        found: dict[tuple[str, str], ParsedLesion] = {}
        if data is not None:
            block = self.block(data, "LESION")
            for side in SIDES:
                for lesion_no, lesion in self.block(block.get(side) or {}, side).items():
                    item = self.block(lesion, "lesion")
                    self.sanitizer.dropped += int("LesionNotes" in item)
                    found[(side, str(lesion_no))] = ParsedLesion(
                        side=side,
                        lesion_no=str(lesion_no),
                        description=self.enum(item, "LesionDescription", LesionDescription),
                        position=self.code(item, "LesionPosition"),
                        cyst_aspirated=self.flag(item, "CystAspirated"),
                        raw=self.sanitizer.mapping(dict(item), _LESION_FIELDS),
                    )
                    position = found[(side, str(lesion_no))].position
                    if position is not None and not LESION_POSITION.match(position):
                        raise self.fail("LesionPosition is not a known position")
        for event in events:
            for finding in event.findings:
                key = (finding.side, finding.lesion_no)
                if key not in found:
                    found[key] = ParsedLesion(finding.side, finding.lesion_no, None, None,
                                              None, {})
        return tuple(found[k] for k in sorted(found))

    def density(self, data: Mapping[str, Any]) -> ParsedDensity:
        grade = self.code(data, "VolparaDensityGrade", _DENSITY_GRADES)
        known = {"StudyInstanceUID", "SOPInstanceUID", "Side", "Algorithm", "Date",
                 "VolumetricBreastDensity", "FibroglandularTissueVolume", "BreastVolume",
                 "VolparaDensityGrade"}
        return ParsedDensity(
            study_uid=self.uid(data.get("StudyInstanceUID"), "StudyInstanceUID"),
            sop_uid=self.uid(data.get("SOPInstanceUID"), "SOPInstanceUID"),
            side=self.code(data, "Side", SIDES) or "",
            algorithm=self.text(data, "Algorithm", 32) or "Volpara",
            measured_date=self.date(data, "Date"),
            vbd_pct=self.number(data, "VolumetricBreastDensity", 0, 100),
            fgv_cm3=self.number(data, "FibroglandularTissueVolume", 0, 10_000),
            breast_vol_cm3=self.number(data, "BreastVolume", 0, 20_000),
            density_grade=None if grade is None else _DENSITY_GRADES[grade],
            raw=self.sanitizer.mapping(dict(data), frozenset(known)),
        )

    def feature(self, data: Mapping[str, Any]) -> ParsedFeature:
        name = self.text(data, "Feature", 32).lower().replace(" ", "_")
        if not _FEATURE.match(name):
            raise self.fail("Feature is missing or not a code")
        value = self.text(data, "Value", 64)
        if value and looks_like_free_text(value):
            raise self.fail("Value is free text")
        category = self.code(data, "Category", ("TECHNICAL", "BIOLOGICAL"))
        return ParsedFeature(
            study_uid=self.uid(data.get("StudyInstanceUID"), "StudyInstanceUID"),
            sop_uid=self.uid(data.get("SOPInstanceUID"), "SOPInstanceUID"),
            side=self.code(data, "Side", SIDES) or "",
            category=(category or ("TECHNICAL" if name in TECHNICAL_FEATURES
                                   else "BIOLOGICAL")).lower(),
            feature=name,
            value=value,
            source=self.text(data, "Source", 32),
        )


def _codes(allowed: Iterable[str] | None = None) -> Callable[[_Reader, Mapping[str, Any], str],
                                                             Any]:
    return lambda r, d, k: r.codes(d, k, allowed) or None


FINDING_FIELDS: Final[dict[str, tuple[str, Callable[[_Reader, Mapping[str, Any], str], Any]]]] = {
    "DatePerformed": ("date_performed", lambda r, d, k: r.date(d, k)),
    "Opinion": ("opinion", lambda r, d, k: r.opinion(d, k)),
    "MammoOpinion": ("mammo_opinion", lambda r, d, k: r.opinion(d, k)),
    "UssOpinion": ("uss_opinion", lambda r, d, k: r.opinion(d, k)),
    "MammoSizeMm": ("mammo_size_mm", lambda r, d, k: r.number(d, k, 0, 500)),
    "InvasivePresent": ("invasive_present", lambda r, d, k: r.flag(d, k)),
    "InvasiveComponents": ("invasive_components", _codes(INVASIVE_COMPONENTS)),
    "InvasiveType": ("invasive_type", lambda r, d, k: r.code(d, k, INVASIVE_TYPES)),
    "DiseaseGrade": ("disease_grade", lambda r, d, k: r.code(d, k, DISEASE_GRADES)),
    "InSituComponents": ("insitu_components", _codes(INSITU_COMPONENTS)),
    "DcisGrade": ("dcis_grade", lambda r, d, k: r.code(d, k, DCIS_GRADES)),
    "MalignancyType": (
        "malignancy_type", lambda r, d, k: r.code(d, k, MALIGNANCY_TYPES, upper=False)
    ),
    "HER2ReceptorScore": ("her2_score", lambda r, d, k: r.code(d, k, HER2_SCORES)),
    "HER2ReceptorStatus": ("her2_status", lambda r, d, k: r.code(d, k)),
    "HormoneERScore": ("er_score", lambda r, d, k: r.code(d, k)),
    "HormoneERStatus": ("er_status", lambda r, d, k: r.code(d, k)),
    "HormonePRScore": ("pr_score", lambda r, d, k: r.code(d, k)),
    "HormonePRStatus": ("pr_status", lambda r, d, k: r.code(d, k)),
    "WholeSizeOfTumour": ("tumour_size_mm", lambda r, d, k: r.number(d, k, 0, 500)),
    "SizeDuctalOnly": ("ductal_size_mm", lambda r, d, k: r.number(d, k, 0, 500)),
    "AxillaryNodesNumberPositive": ("nodes_positive", lambda r, d, k: r.integer(d, k, 0, 100)),
    "ExcisionMargins": ("margins", lambda r, d, k: r.code(d, k, limit=16)),
    "OtherGeneCodes": ("mutation_codes", _codes()),
}
"""NBSS lesion-event fields modelled as :class:`~omipacs.clinical.models.LesionFinding`
columns, with how each is read. Other fields go to ``raw``."""


def _first(data: Mapping[str, Any], keys: Iterable[str]) -> str:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise InvalidRecord(f"record: {key} is not text")
            return str(value).strip()
    return ""


def parse_record(
    record: Any,
    keys: DeidKeys,
    *,
    keep_true_year: bool = False,
    keep_fields: Iterable[str] = DEFAULT_KEEP_FIELDS,
) -> ParsedClient:
    """Parse and de-identify one client record.

    Parameters
    ----------
    record
        The decoded JSON of one ``NBSS_<client>.json``.
    keys
        The archive's de-identification keys (the ones its images are cleaned with).
    keep_true_year
        Keep ``ActualEpisodeOpenedYear``. Off by default: with the shifted dates it
        narrows down the client's offset, so keep it only where the licence allows.
    keep_fields
        Unmodelled fields kept in ``raw`` (``[deid] clinical_fields``); the others are
        dropped and counted.

    Raises
    ------
    InvalidRecord
        The record cannot be read faithfully; the message says where and why.
    """
    if not isinstance(record, dict):
        raise InvalidRecord("record: not a JSON object")
    pseudonym = pseudonym_for(
        keys,
        _first(record, NHS_KEYS),
        _first(record, SITE_KEYS),
        _first(record, [ISSUER_KEY]),
        _first(record, LOCAL_ID_KEYS),
    )
    if pseudonym is None:
        if _first(record, NHS_KEYS):
            raise InvalidRecord("record: the NHS number is not valid and no site and local ID "
                                "are given")
        raise InvalidRecord("record: no NHS number, and no site and local ID")
    reader = _Reader(keys, date_offset_days(keys, pseudonym.client_id), keep_true_year,
                     frozenset(keep_fields))
    episodes: list[ParsedEpisode] = []
    for key, value in record.items():
        if key in _TOP_LEVEL or not isinstance(value, dict):
            continue
        if not _EPISODE_ID.match(str(key)):
            raise InvalidRecord("record: an episode ID is not a short code")
        episode_id = episode_pseudonym(keys, pseudonym.client_id, str(key))
        episodes.append(reader.episode(episode_id, value))
    reader.where = "record"
    densities = record.get("DENSITY") or []
    features = record.get("IMAGEFEATURES") or []
    if not isinstance(densities, list) or not isinstance(features, list):
        raise InvalidRecord("record: DENSITY and IMAGEFEATURES must be lists")
    parsed_densities = []
    for n, item in enumerate(densities, start=1):
        reader.where = f"DENSITY {n}"
        parsed_densities.append(reader.density(reader.block(item, "entry")))
    parsed_features = []
    for n, item in enumerate(features, start=1):
        reader.where = f"IMAGEFEATURES {n}"
        parsed_features.append(reader.feature(reader.block(item, "entry")))
    reader.where = "record"
    decile = reader.integer(record, "IMDDecile", 1, 10)
    ethnicity = reader.code(record, "Ethnicity") or ""
    site = _first(record, SITE_KEYS)
    if site and not _SITE.match(site):
        raise InvalidRecord("record: Site is not a code")
    raw = reader.sanitizer.mapping(
        {k: v for k, v in record.items() if not isinstance(v, dict)}, _TOP_LEVEL
    )
    return ParsedClient(
        pseudonym=pseudonym,
        site=site,
        ethnicity=ethnicity,
        imd_decile=decile,
        high_risk=reader.flag(record, "HighRisk"),
        mutation_genes=reader.codes(record, "MutationGenes"),
        episodes=tuple(episodes),
        densities=tuple(parsed_densities),
        features=tuple(parsed_features),
        raw=raw,
        dropped_fields=reader.sanitizer.dropped,
    )
