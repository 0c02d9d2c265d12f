"""``docs/conformance.md``: the DICOM conformance statement, written from the code.

Every table in the statement is read from the table the server itself runs on: the
SOP classes and transfer syntaxes the SCP is built with (:func:`omipacs.dimse.scp.
build_ae`), the query attributes and their levels (:data:`omipacs.query.attributes.
ATTRIBUTES`), the error hierarchy and its DICOM and HTTP codes (:mod:`omipacs.errors`),
the WADO-RS routes Flask dispatches on, and the media types negotiation offers. The test
``tests/conformance/test_statement.py`` regenerates the document and fails when the
committed file differs, so the statement cannot drift from the behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from flask import Flask
from pydicom.uid import UID

from omipacs.config import DimseSettings, HttpSettings, Settings
from omipacs.dicom.uids import ACCEPTED_TRANSFER_SYNTAXES, STORAGE_SOP_CLASSES
from omipacs.dimse import qr
from omipacs.dimse.scp import build_ae
from omipacs.errors import DimseStatus, OmipacsError
from omipacs.query import params
from omipacs.query.attributes import ATTRIBUTES, DEFAULTS, LEVELS, Attribute, rank
from omipacs.query.identifier import QR_LEVELS, UNIQUE_KEYS
from omipacs.retrieve.render import MEDIA_TYPES as RENDERED_TYPES
from omipacs.retrieve.transcode import supported_targets
from omipacs.web import negotiate, qido, stow, wado

TITLE = "# omipacs DICOM conformance statement"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*out, ""]


def _name(uid: str) -> str:
    return UID(uid).name if UID(uid).is_valid else uid


def _dimse(dimse: DimseSettings) -> list[str]:
    settings = Settings(dimse=dimse)
    ae = build_ae(settings)
    contexts = sorted(ae.supported_contexts, key=lambda c: str(c.abstract_syntax))
    lines = [
        "## 2. Networking (DIMSE)",
        "",
        f"One Application Entity, default AE title `{dimse.ae_title}`, port {dimse.port}. "
        "Associations are accepted only from peers on the `[[dimse.peers]]` allow-list "
        f"(A-ASSOCIATE-RJ otherwise); at most {dimse.max_associations} at once; maximum "
        f"PDU {dimse.max_pdu_size} bytes (a larger announced PDU is aborted before it is "
        "read). The archive initiates associations only to allow-listed peers with a "
        "`host` and `port` (C-MOVE destinations, `omipacs send`).",
        "",
        "### 2.1 SOP classes",
        "",
    ]
    rows = []
    for cx in contexts:
        uid = str(cx.abstract_syntax)
        if uid in STORAGE_SOP_CLASSES:
            role = "SCP (C-STORE); SCU (C-MOVE, C-GET sub-operations, `omipacs send`)"
        else:
            role = "SCP"
        rows.append((STORAGE_SOP_CLASSES.get(uid, _name(uid)), f"`{uid}`", role))
    lines += _table(("SOP class", "UID", "role"), rows)
    lines += [
        "### 2.2 Transfer syntaxes",
        "",
        "Accepted for every storage SOP class, and stored exactly as received; C-MOVE, "
        "C-GET and `omipacs send` send the stored bytes unchanged, offering the stored "
        "transfer syntax (an instance the peer accepts no context for is a failed "
        "sub-operation). Query/Retrieve contexts take the two little endian syntaxes.",
        "",
    ]
    storage = next(c for c in contexts if str(c.abstract_syntax) in STORAGE_SOP_CLASSES)
    find = next(c for c in contexts if str(c.abstract_syntax) in qr.FIND_MODELS)
    rows = [
        (_name(ts), f"`{ts}`", "yes" if ts in find.transfer_syntax else "")
        for ts in storage.transfer_syntax
    ]
    lines += _table(("transfer syntax", "UID", "also for Query/Retrieve"), rows)
    lines += [
        "Deflated Explicit VR Little Endian and Explicit VR Big Endian are not accepted.",
        "",
        "SCP/SCU role selection (PS3.7 D.3.3.4) is accepted for every storage SOP class, "
        "so a C-GET peer offering a storage context with the SCP role receives its "
        "instances on it.",
        "",
    ]
    return lines


def _find() -> list[str]:
    lines = [
        "### 2.3 C-FIND",
        "",
        "Patient Root and Study Root, hierarchical and relational-like: the identifier is "
        "translated into the query QIDO-RS parameters become and answered by the same "
        "query service, so matching is identical on both doors. Levels:",
        "",
    ]
    lines += _table(
        ("QueryRetrieveLevel", "unique key", "models"),
        (
            (
                name,
                UNIQUE_KEYS[level],
                "Patient Root" if level == "patient" else "Patient Root, Study Root",
            )
            for name, level in QR_LEVELS.items()
        ),
    )
    lines += [
        "Keys of a level may be given at that level and at the levels below it; the "
        "attributes of the QIDO-RS table (section 3.2) are the supported keys. A key the "
        "archive does not hold is returned empty and not matched. The unique keys from "
        "the model's top down to the queried level are always returned. "
        f"At most `dimse.max_find_results` matches (default "
        f"{DimseSettings().max_find_results}) are returned, then the final status is "
        f"0x{DimseStatus.OUT_OF_RESOURCES:04X} with an Error Comment. C-CANCEL is checked "
        "before every match.",
        "",
        "### 2.4 C-MOVE and C-GET",
        "",
        "The identifier holds the unique keys from the model's top to the "
        "QueryRetrieveLevel, the last a list of values. C-MOVE sends only to allow-listed "
        f"peers with a port (0x{DimseStatus.MOVE_DESTINATION_UNKNOWN:04X} otherwise). "
        f"At most {qr.MAX_SUB_OPERATIONS} sub-operations per request. Pending responses "
        "carry the sub-operation counts; the final response the counts and, when some "
        "failed, the Failed SOP Instance UID List with status "
        f"0x{DimseStatus.SUB_OPERATIONS_WARNING:04X}.",
        "",
    ]
    return lines


def _statuses() -> list[str]:
    lines = [
        "## 4. Errors and statuses",
        "",
        "Every failure is one class of the archive's error hierarchy, mapped once to a "
        "DICOM status (C-STORE, C-FIND, C-MOVE, C-GET; STOW-RS FailureReason) and an HTTP "
        "status:",
        "",
    ]

    def walk(cls: type[OmipacsError]) -> Iterable[type[OmipacsError]]:
        yield cls
        for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
            yield from walk(sub)

    rows = [
        (
            cls.__name__,
            f"0x{cls.dimse_status:04X}",
            cls.http_status,
            (cls.__doc__ or "").strip().splitlines()[0],
        )
        for cls in walk(OmipacsError)
        if cls.__module__ == "omipacs.errors"
    ]
    lines += _table(("error", "DICOM status", "HTTP", "meaning"), rows)
    lines += [
        "Other DIMSE statuses: "
        + ", ".join(
            f"0x{s:04X} {s.name.replace('_', ' ').lower()}"
            for s in (DimseStatus.SUCCESS, DimseStatus.PENDING, DimseStatus.CANCEL)
        )
        + ".",
        "",
    ]
    return lines


def _matching(attr: Attribute) -> str:
    if not attr.matchable:
        return "return only"
    if attr.vr == "SQ":
        return "by item attribute path"
    if attr.vr == "UI":
        return "single value, UID list"
    if attr.vr in ("DA", "TM"):
        return "single value, range"
    if attr.vr in ("IS", "US", "DS"):
        return "single value, range"
    if attr.vr == "PN":
        return "single value, wild card, any case, fuzzy"
    return "single value, wild card, list"


def _levels(attr: Attribute) -> str:
    return ", ".join(level for level in LEVELS if attr.usable_at(level))


def _qido(http: HttpSettings) -> list[str]:
    lines = [
        "## 3. DICOMweb (PS3.18)",
        "",
        f"Service root `{http.base_path}`; each saved cohort is also served read-only at "
        f"`/cohorts/{{id}}{http.base_path}`.",
        "",
        "### 3.1 Resources",
        "",
    ]
    app = Flask("conformance")
    for blueprint in (qido.bp, wado.bp, stow.bp):
        app.register_blueprint(blueprint, url_prefix=http.base_path)
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(http.base_path):
            continue
        path = rule.rule[len(http.base_path) :].replace("<", "{").replace(">", "}")
        routes.setdefault(path.replace("path:", ""), set()).update(
            (rule.methods or set()) - {"HEAD", "OPTIONS"}
        )
    rows = [(f"`{path}`", ", ".join(sorted(m))) for path, m in sorted(routes.items())]
    lines += _table(("resource", "methods"), rows)
    lines += [
        "Other methods get 405 with an `Allow` header; `OPTIONS` on the root returns WADL.",
        "",
        "### 3.2 QIDO-RS matching keys",
        "",
        "Matching follows PS3.4 C.2.2.2 (see `omipacs/query/params.py`); a lower-level "
        "key used at a higher level matches when any row below does. Each match carries "
        "Retrieve URL (0008,1190). Page size: `limit` (default "
        f"{http.qido_default_limit}, at most {http.qido_max_limit}; more gives "
        "`Warning: 299`), `offset`, `fuzzymatching`, `includefield`. A DICOM attribute "
        "the archive does not hold is ignored and named in `Warning: 299`; any other "
        "unknown parameter is a 400.",
        "",
    ]
    keys: list[tuple[str, ...]] = [
        (
            attr.keyword,
            f"({attr.tag >> 16:04X},{attr.tag & 0xFFFF:04X})",
            attr.vr,
            attr.level,
            _levels(attr),
            _matching(attr),
        )
        for attr in sorted(ATTRIBUTES, key=lambda a: (rank(a.level), a.keyword))
    ]
    lines += _table(("attribute", "tag", "VR", "level", "usable at", "matching"), keys)
    rows = [(level, ", ".join(DEFAULTS[level]) + ", RetrieveURL") for level in LEVELS]
    lines += ["Default return attributes:", "", *_table(("level", "attributes"), rows)]
    lines += [
        f"Limits: at most {params.MAX_PARAMETERS} parameters, {params.MAX_LIST_VALUES} "
        f"values in a list, values of {params.MAX_VALUE_LENGTH} characters.",
        "",
    ]
    return lines


def _wado() -> list[str]:
    lines = [
        "### 3.3 WADO-RS media types",
        "",
        "Instances: `application/dicom` (single) or `multipart/related; "
        'type="application/dicom"`, in the stored transfer syntax (`transfer-syntax=*`) '
        "or converted losslessly. Metadata: `application/dicom+json` (default) or "
        '`multipart/related; type="application/dicom+xml"` (PS3.19 Native DICOM Model, '
        "one part per instance). Accept parameters are matched per RFC 9110 §12.5.1 "
        "(`charset=utf-8` on JSON and XML is honoured). Bulk data and frames: parts carry "
        "`Content-Location`. Rendered: "
        + ", ".join(f"`{m}`" for m in sorted(RENDERED_TYPES))
        + ".",
        "",
        "Frames of an instance stored in each syntax can be sent as:",
        "",
    ]
    rows = []
    for ts in ACCEPTED_TRANSFER_SYNTAXES:
        targets = sorted(supported_targets(ts) - {ts})
        rows.append(
            (
                _name(ts),
                f"`{negotiate.frame_media_type(ts).split(';')[0]}`",
                ", ".join(_name(t) for t in targets) or "as stored only",
            )
        )
    lines += _table(("stored as", "frame media type", "also converted to"), rows)
    lines += [
        "`image/jpeg` frames are served only for instances stored as JPEG: the archive "
        "never re-encodes lossily and has no JPEG lossless encoder (406 with that reason).",
        "",
        "### 3.4 STOW-RS",
        "",
        '`multipart/related; type="application/dicom"` only (415 otherwise), through the '
        "same ingest pipeline as C-STORE. The response starts with the study's Retrieve "
        "URL when one study was stored; each stored instance has its own.",
        "",
    ]
    return lines


def generate() -> str:
    """The statement for the default settings, as Markdown."""
    settings = Settings()
    lines = [
        TITLE,
        "",
        "<!-- Generated by `omipacs conformance-statement --write docs/conformance.md`; "
        "do not edit by hand. -->",
        "",
        "## 1. Overview",
        "",
        "omipacs is a research archive for breast screening images. It stores instances "
        "received over DIMSE C-STORE, STOW-RS and `omipacs import`, de-identified on "
        "ingest, and serves them over DICOMweb (QIDO-RS, WADO-RS) and DIMSE "
        "Query/Retrieve (C-FIND, C-MOVE, C-GET). Every value it returns is the "
        "de-identified one.",
        "",
        *_dimse(settings.dimse),
        *_find(),
        *_qido(settings.http),
        *_wado(),
        *_statuses(),
    ]
    return "\n".join(lines).rstrip() + "\n"
