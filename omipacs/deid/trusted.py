"""Objects stored without de-identification must still name nobody.

Some uploads are made *against the archive's own data* (a viewer saving an SR about a
stored image): their UIDs are already the archive's pseudonyms and remapping them again
would break their references, so they are stored unchanged. That is a permission, not a
format: an identifiable header sent down the same path would be published verbatim. So
such an object is accepted only if its patient identity is an existing client pseudonym
of this archive and the other patient-identifying attributes are empty; otherwise it is
refused with :class:`~omipacs.errors.IdentifiableInstance` (the sender should upload it
for de-identification instead).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from pydicom.dataset import Dataset

from omipacs.deid.pseudonyms import LINKED_PREFIX, UNLINKED_PREFIX
from omipacs.errors import IdentifiableInstance

if TYPE_CHECKING:
    from omipacs.deid.identity import IdentityMap

PSEUDONYM: Final = re.compile(rf"^({LINKED_PREFIX}|{UNLINKED_PREFIX})[A-Z2-7]{{12}}$")
"""The shape of a client ID (:func:`omipacs.deid.pseudonyms.client_pseudonym`)."""

MUST_BE_EMPTY: Final = (
    "PatientBirthDate", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames",
    "PatientBirthName", "PatientMotherBirthName", "PatientAddress",
    "PatientTelephoneNumbers", "MedicalRecordLocator", "IssuerOfPatientID",
)
"""Patient attributes the archive never publishes (Table E.1-1 X or Z)."""


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - an unreadable value cannot be shown to be empty
        return "?"
    if value is None:
        return ""
    if isinstance(value, list | tuple) or keyword.endswith("Sequence"):
        return "?" if len(value) else ""
    return str(value).strip()


def check_pseudonymous_header(header: Dataset, identity: IdentityMap | None) -> None:
    """Raise :class:`IdentifiableInstance` unless ``header`` names only a known client.

    Patient ID must be a client ID the identity map knows (any client ID shape when
    there is no map), Patient Name empty or the same client ID, and the attributes in
    :data:`MUST_BE_EMPTY` absent or empty. Reasons never echo a value.
    """
    patient_id = _text(header, "PatientID")
    name = _text(header, "PatientName")
    if not PSEUDONYM.match(patient_id):
        raise IdentifiableInstance(
            "PatientID is not a client pseudonym of this archive: upload the object for "
            "de-identification instead"
        )
    if identity is not None and identity.lookup_client(patient_id) is None:
        raise IdentifiableInstance("PatientID is not a client known to this archive")
    if name not in ("", patient_id):
        raise IdentifiableInstance("PatientName is not the client pseudonym")
    for keyword in MUST_BE_EMPTY:
        if _text(header, keyword):
            raise IdentifiableInstance(f"{keyword} must be empty in a pseudonymous object")
