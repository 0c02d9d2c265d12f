"""A MIDI-B style scorer: an answer key of per-element checks, scored passed / total.

The check types follow CBIIT/MIDI_validation_script:
``text_removed`` (an identifying value is absent), ``date_shifted`` (the original date
is replaced by the expected shifted one), ``uid_changed`` (the expected remapped UID),
``uid_consistent`` (one original UID, one new UID, everywhere, and references resolve),
``patid_consistent`` (one patient, one Patient ID) and ``tag_retained`` /
``text_retained`` (kept values unchanged). The answer key is derived from the *original*
data sets and the expected pseudonyms, independently of the engine's profile.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from omipacs.deid.engine import DeidResult
from omipacs.deid.keys import DeidKeys
from omipacs.deid.profile import DICOM_UID_ROOT, is_class_uid_keyword
from omipacs.deid.pseudonyms import (
    aggregate_age,
    client_pseudonym,
    date_offset_days,
    remap_uid,
    shift_date,
    shift_datetime,
)

from .corpus import PHI_CLASSES, PHI_TOKENS, RETAINED, SAFE_DESCRIPTORS, Instance, age_at

Path = tuple[object, ...]
"""Steps from the top: ``(tag, item index)`` pairs, then the element's tag."""

MISSING_CONTAINER = object()


def text_of(value: object) -> str:
    """Every character of a value, for substring search (bytes read as Latin-1)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(text_of(v) for v in value)
    return "" if value is None else str(value)


def phi_hits(text: str) -> list[str]:
    """The PHI tokens found in ``text`` (case-insensitive)."""
    upper = text.upper()
    return [token for token in PHI_TOKENS if token.upper() in upper]


def leaves(ds: Dataset, prefix: Path = ()) -> Iterator[tuple[Path, DataElement]]:
    """Every non-sequence element of ``ds`` at any depth, with its path."""
    for elem in ds:
        if elem.VR == "SQ":
            for index, item in enumerate(elem.value):
                yield from leaves(item, (*prefix, (elem.tag, index)))
        else:
            yield (*prefix, elem.tag), elem


def resolve(ds: Dataset, path: Path) -> DataElement | object | None:
    """The element at ``path``; ``None`` if it alone is gone, MISSING_CONTAINER if a
    sequence or item on the way was removed."""
    current = ds
    for step in path[:-1]:
        assert isinstance(step, tuple)
        tag, index = step
        if tag not in current:
            return MISSING_CONTAINER
        items = current[tag].value
        if index >= len(items):
            return MISSING_CONTAINER
        current = items[index]
    last = path[-1]
    assert isinstance(last, BaseTag)
    return current[last] if last in current else None


HIPAA_KINDS = frozenset({"text_removed", "date_shifted", "age_aggregated"})
"""Checks about an identifier of a HIPAA Safe Harbor class (45 CFR 164.514(b)(2))."""


def hipaa_class(original: str, vr: str) -> str:
    """The Safe Harbor class of a planted value: by its tokens, else by its VR."""
    classes = [PHI_CLASSES[t] for t in phi_hits(original)]
    for wanted in ("ids", "dates", "phone", "geographic"):
        if wanted in classes:
            return wanted
    if vr in ("DA", "DT"):
        return "dates"
    if vr == "AS":
        return "ages over 89"
    return "names" if vr == "PN" or classes else "other"


@dataclass
class Check:
    kind: str
    where: str
    original: str
    expected: str | None = None
    passed: bool = False
    hipaa: str | None = None
    """The Safe Harbor class this check protects, if any."""


@dataclass
class Scorer:
    keys: DeidKeys
    checks: list[Check] = field(default_factory=list)
    uid_outputs: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    patient_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def expected_client(self, instance: Instance) -> str:
        patient = instance.patient
        if patient.nhs:
            return client_pseudonym(self.keys, patient.nhs, "", "").client_id
        issuer = f"{instance.site}|{instance.dataset.IssuerOfPatientID}"
        return client_pseudonym(self.keys, None, issuer, str(instance.dataset.PatientID)).client_id

    def score_instance(self, number: int, instance: Instance, result: DeidResult) -> None:
        out = result.dataset
        client = self.expected_client(instance)
        offset = date_offset_days(self.keys, client)
        sources = [("", instance.dataset, out), ("meta ", instance.meta, result.file_meta)]
        for label, original, cleaned in sources:
            for path, elem in leaves(original):
                where = f"#{number} {label}{'/'.join(str(p) for p in path)}"
                self._check(where, path, elem, cleaned, offset, top=len(path) == 1)
        self.patient_ids[instance.patient.key].add(str(out.PatientID))
        true_age = age_at(instance.patient.birth, instance.study_date)
        expected_age = aggregate_age(true_age)
        old = expected_age != true_age
        self.checks.append(Check("age_aggregated" if old else "age_kept",
                                 f"#{number} PatientAge", true_age, expected_age,
                                 str(out.get("PatientAge", "")) == expected_age,
                                 "ages over 89" if old else None))
        self.checks.append(Check("patid_consistent", f"#{number} PatientName", client, client,
                                 str(out.PatientID) == client == str(out.PatientName)))
        for reference in instance.references:
            self.uid_outputs[reference].add(remap_uid(self.keys, reference))

    def _check(self, where: str, path: Path, elem: DataElement, cleaned: Dataset,
               offset: int, *, top: bool) -> None:
        original = text_of(elem.value)
        found = resolve(cleaned, path)
        value = text_of(found.value) if isinstance(found, DataElement) else None
        keyword = elem.keyword
        if phi_hits(original):
            self.checks.append(Check("text_removed", where, original, None,
                                     value is None or not phi_hits(value),
                                     hipaa_class(original, elem.VR)))
        elif elem.VR in ("DA", "DT") and original.strip() and keyword not in (
                "ContextGroupVersion", "TemplateVersion"):
            shift = shift_date if elem.VR == "DA" else shift_datetime
            expected = shift(original, offset)
            ok = found is MISSING_CONTAINER or value == expected
            self.checks.append(Check("date_shifted", where, original, expected, ok, "dates"))
        elif (elem.VR == "UI" and original and not is_class_uid_keyword(keyword)
              and not original.startswith(DICOM_UID_ROOT)):
            expected = remap_uid(self.keys, original)
            ok = found is MISSING_CONTAINER or value == expected
            self.checks.append(Check("uid_changed", where, original, expected, ok))
            if value is not None:
                self.uid_outputs[original].add(value)
        elif top and keyword in RETAINED and keyword != "PatientAge":
            self.checks.append(Check("tag_retained", where, original, original, value == original))
        elif original in SAFE_DESCRIPTORS:
            self.checks.append(Check("text_retained", where, original, original,
                                     value == original))

    def finish(self, image_uids: dict[str, str]) -> None:
        """Consistency checks across the corpus.

        ``image_uids`` maps each original SOP Instance UID in the corpus to the SOP
        Instance UID its de-identified copy received.
        """
        for original, outputs in self.uid_outputs.items():
            ok = len(outputs) == 1
            if original in image_uids:
                ok = ok and outputs == {image_uids[original]}
            self.checks.append(Check("uid_consistent", original, original, None, ok))
        for key, ids in self.patient_ids.items():
            self.checks.append(Check("patid_consistent", key, key, None, len(ids) == 1))

    def table(self) -> list[tuple[str, int, int, float]]:
        by_kind: dict[str, list[bool]] = defaultdict(list)
        for check in self.checks:
            by_kind[check.kind].append(check.passed)
        rows = [(kind, sum(v), len(v), 100.0 * sum(v) / len(v)) for kind, v in by_kind.items()]
        rows.sort()
        hipaa: dict[str, list[bool]] = defaultdict(list)
        for check in self.checks:
            if check.hipaa is not None:
                hipaa[check.hipaa].append(check.passed)
                hipaa["ALL"].append(check.passed)
        for name, v in sorted(hipaa.items(), key=lambda kv: (kv[0] == "ALL", kv[0])):
            rows.append((f"HIPAA {name}", sum(v), len(v), 100.0 * sum(v) / len(v)))
        total = [c.passed for c in self.checks]
        rows.append(("ALL", sum(total), len(total), 100.0 * sum(total) / len(total)))
        return rows

    def render(self) -> str:
        lines = [f"{'check':22} {'passed':>8} {'total':>8} {'score':>8}"]
        lines += [f"{k:22} {p:8d} {t:8d} {s:7.2f}%" for k, p, t, s in self.table()]
        return "\n".join(lines)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]
