"""The Native DICOM Model (PS3.19 Annex A) from DICOM JSON, for ``application/dicom+xml``.

WADO-RS metadata must also be offered as XML (PS3.18 §10.4.1.1.2, Table 8.7.3-2:
``multipart/related; type="application/dicom+xml"``). The archive keeps each instance's
DICOM JSON (PS3.18 Annex F) from ingest; both models describe the same attributes, so
the XML is written from the JSON with ElementTree, element by element, never from the
file: ``Value`` with its ``number``, ``PersonName`` split into its components,
``BulkData uri`` and ``InlineBinary``, and ``Item`` for sequences. Keywords come from
pydicom's data dictionary.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pydicom.datadict import keyword_for_tag

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _person_name(parent: ET.Element, number: int, value: Any) -> None:
    name = ET.SubElement(parent, "PersonName", number=str(number))
    groups = value if isinstance(value, dict) else {"Alphabetic": str(value)}
    for group in _PN_GROUPS:
        text = groups.get(group)
        if not text:
            continue
        holder = ET.SubElement(name, group)
        for component, part in zip(_PN_COMPONENTS, str(text).split("^"), strict=False):
            if part:
                ET.SubElement(holder, component).text = part


def _attributes(parent: ET.Element, doc: dict[str, Any]) -> None:
    for key in sorted(doc):
        element = doc[key]
        tag = int(key, 16)
        attrs = {"tag": key.upper(), "vr": str(element.get("vr", "UN"))}
        keyword = keyword_for_tag(tag)
        if keyword:
            attrs["keyword"] = keyword
        node = ET.SubElement(parent, "DicomAttribute", attrs)
        if "BulkDataURI" in element:
            ET.SubElement(node, "BulkData", uri=str(element["BulkDataURI"]))
            continue
        if "InlineBinary" in element:
            ET.SubElement(node, "InlineBinary").text = str(element["InlineBinary"])
            continue
        for number, value in enumerate(element.get("Value", ()), start=1):
            if attrs["vr"] == "SQ":
                item = ET.SubElement(node, "Item", number=str(number))
                _attributes(item, value or {})
            elif attrs["vr"] == "PN":
                _person_name(node, number, value)
            elif value is not None:
                ET.SubElement(node, "Value", number=str(number)).text = _text(value)


def native_xml(doc: dict[str, Any]) -> bytes:
    """One instance's DICOM JSON object as a PS3.19 ``NativeDicomModel`` document."""
    root = ET.Element("NativeDicomModel", {"xmlns": NAMESPACE, "xml:space": "preserve"})
    _attributes(root, doc)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body
