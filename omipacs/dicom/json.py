"""DICOM JSON (PS3.18 Annex F) for the metadata endpoints, computed once at ingest.

Large binary values are replaced by a ``BulkDataURI`` relative to the instance's
WADO-RS URL (``bulkdata/<tag path>``); the web layer turns it into an absolute URL per
request (the host and prefix depend on the reverse proxy in front of us). Conversion of
each element is pydicom's; this module only adds bulk data handling and sequences.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

#: VRs whose values may be bulk data (PS3.18 §F.2.7).
BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULK_THRESHOLD = 1024
BULK_PREFIX = "bulkdata/"
MAX_DEPTH = 32


def _length(ds: Dataset, tag: int) -> int:
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement):
        return int(raw.length) if raw.length != 0xFFFFFFFF else 1 << 62
    value = raw.value if isinstance(raw, DataElement) else None
    try:
        return len(value) if value is not None else 0
    except TypeError:
        return 0


def dataset_to_json(ds: Dataset, path: str = "", depth: int = 0) -> dict[str, Any]:
    """Convert ``ds`` to a DICOM JSON object, with bulk data as relative URIs."""
    out: dict[str, Any] = {}
    for tag in sorted(ds.keys()):
        if tag.group == 0x0002:
            continue
        key = f"{int(tag):08X}"
        elem = ds[tag]
        vr = str(elem.VR)
        if vr == "SQ":
            items = []
            if depth >= MAX_DEPTH:
                out[key] = {"vr": "SQ"}
                continue
            for i, item in enumerate(elem.value or []):
                items.append(dataset_to_json(item, f"{path}{key}/{i}/", depth + 1))
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        elif vr in BULK_VRS and _length(ds, tag) > BULK_THRESHOLD:
            out[key] = {"vr": vr, "BulkDataURI": f"{BULK_PREFIX}{path}{key}"}
        else:
            out[key] = elem.to_json_dict(
                bulk_data_element_handler=None, bulk_data_threshold=1 << 62
            )
    return out


def instance_json(
    ds: Dataset, *, transfer_syntax: str, pixel_tag: int | None, pixel_vr: str | None
) -> dict[str, Any]:
    """The metadata of one instance: header, pixel data reference, stored syntax."""
    out = dataset_to_json(ds)
    # Available Transfer Syntax UID (0008,3002): viewers read it to pick a decoder.
    out["00083002"] = {"vr": "UI", "Value": [transfer_syntax]}
    if pixel_tag is not None:
        key = f"{pixel_tag:08X}"
        out[key] = {"vr": pixel_vr or "OW", "BulkDataURI": f"{BULK_PREFIX}{key}"}
    return dict(sorted(out.items()))


def pack(obj: dict[str, Any]) -> bytes:
    """Compact gzip of the JSON: metadata is read often and is ~10x smaller packed."""
    return gzip.compress(json.dumps(obj, separators=(",", ":")).encode(), compresslevel=6)


def unpack(blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`pack`."""
    result: dict[str, Any] = json.loads(gzip.decompress(blob))
    return result
