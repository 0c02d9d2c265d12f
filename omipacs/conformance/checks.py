"""The conformance self-test: DICOMweb (and DIMSE) checks against any server.

``omipacs conformance URL [--dimse HOST:PORT:AET]`` stores one synthetic study (three
images, made by :mod:`omipacs.demo.factory`: no real patient) with STOW-RS, then asks
for it back every way PS3.18 (and PS3.4 Query/Retrieve) describes, and reports each
check as *passed*, *failed* or *unsupported* (the server answered that it does not
offer the feature: 406, 501, or a refused DIMSE context). It is a client like any
other: plain HTTP (urllib) and pynetdicom, nothing omipacs-specific, so it runs against
another archive as well as this one. Checks never depend on each other's success
beyond the first store: a server missing one feature still gets every other check.
"""

from __future__ import annotations

import email
import email.policy
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from omipacs.demo import factory
from omipacs.demo.names import fake_patient

TIMEOUT = 60.0
NATIVE_XML = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Result:
    """The outcome of one check."""

    area: str
    name: str
    outcome: Outcome
    detail: str = ""


class Unsupported(Exception):
    """The server said it does not offer this (406, 501, a rejected context)."""


class CheckFailed(Exception):
    """The server answered, wrongly."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Sample:
    """The synthetic study the checks use, with the UIDs the server stored."""

    datasets: list[Dataset]
    study: str = ""
    series: dict[str, str] = field(default_factory=dict)
    """SOP Instance UID to Series Instance UID, as stored."""
    family: str = ""
    name: str = ""
    """PatientName as stored (the server may have de-identified it)."""
    study_date: str = ""
    """StudyDate as stored (a de-identifying server may shift dates)."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Web:
    """A minimal DICOMweb client over urllib."""

    def __init__(self, base: str, token: str = "") -> None:
        self.base = base.rstrip("/")
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        accept: str | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Reply:
        url = path if path.startswith("http") else self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url, data=body, method=method)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        if accept:
            req.add_header("Accept", accept)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return Reply(
                    resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
                )
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def get(self, path: str, accept: str | None = None, **params: str) -> Reply:
        return self.request("GET", path, accept=accept, params=params or None)


def parts(reply: Reply) -> list[email.message.Message]:
    """The parts of a multipart/related reply (each with its headers)."""
    head = f"Content-Type: {reply.header('Content-Type')}\r\n\r\n".encode()
    message = email.message_from_bytes(head + reply.body, policy=email.policy.HTTP)
    _expect(message.is_multipart(), "the reply is not multipart")
    return list(message.iter_parts())


def payload(part: email.message.Message) -> bytes:
    """A part's body as bytes."""
    body = part.get_payload(decode=True)
    _expect(isinstance(body, bytes), "a part has no body")
    assert isinstance(body, bytes)
    return body


def _ok(reply: Reply, what: str, *, expect: int = 200) -> Reply:
    if reply.status in (406, 501) and expect == 200:
        raise Unsupported(f"{what}: {reply.status}")
    _expect(reply.status == expect, f"{what}: HTTP {reply.status}, expected {expect}")
    return reply


VIEWS: tuple[tuple[factory.Laterality, factory.View], ...] = (
    ("L", "CC"),
    ("R", "CC"),
    ("L", "MLO"),
)


def make_sample() -> Sample:
    """Three synthetic images of one synthetic patient in one study."""
    rng = factory.as_rng(uuid.uuid4().int % (1 << 32))
    family = "CONFCHECK" + uuid.uuid4().hex[:6].upper()
    patient = fake_patient(rng)
    study = pydicom.uid.generate_uid()
    datasets: list[Dataset] = [
        factory.make_mammo(
            laterality=lat,
            view=view,
            patient=patient,
            study_uid=study,
            rows=64,
            columns=48,
            rng=rng,
            PatientName=f"{family}^SAMPLE",
        )
        for lat, view in VIEWS
    ]
    return Sample(datasets, family=family)


def _multipart(datasets: list[Dataset]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    chunks = []
    for ds in datasets:
        chunks += [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            factory.to_bytes(ds),
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f'multipart/related; type="application/dicom"; boundary={boundary}'


# --- DICOMweb checks ---------------------------------------------------------------------

Check = Callable[[Web, Sample], str]


def stow_store(web: Web, sample: Sample) -> str:
    body, ctype = _multipart(sample.datasets)
    reply = web.request(
        "POST", "/studies", body=body, content_type=ctype, accept="application/dicom+json"
    )
    _expect(reply.status == 200, f"STOW: HTTP {reply.status}")
    doc = Dataset.from_json(reply.json())
    refs = doc.get("ReferencedSOPSequence", [])
    _expect(len(refs) == 3, f"{len(refs)} of 3 instances referenced")
    for ref in refs:
        _expect("RetrieveURL" in ref, "a referenced instance has no RetrieveURL")
    sops = [str(r.ReferencedSOPInstanceUID) for r in refs]
    found = web.get("/instances", "application/dicom+json", SOPInstanceUID=",".join(sops)).json()
    _expect(len(found) == 3, "stored instances not found by SOPInstanceUID")
    sample.study = found[0]["0020000D"]["Value"][0]
    sample.series = {i["00080018"]["Value"][0]: i["0020000E"]["Value"][0] for i in found}
    (study,) = web.get("/studies", "application/dicom+json", StudyInstanceUID=sample.study).json()
    sample.name = study.get("00100010", {}).get("Value", [{}])[0].get("Alphabetic", "")
    sample.study_date = study.get("00080020", {}).get("Value", [""])[0]
    return "3 instances stored"


def stow_retrieve_url(web: Web, sample: Sample) -> str:
    body, ctype = _multipart(sample.datasets[:1])
    reply = web.request("POST", "/studies", body=body, content_type=ctype)
    _expect(reply.status in (200, 202), f"STOW again: HTTP {reply.status}")
    top = reply.json().get("00081190", {}).get("Value", [""])[0]
    _expect(top.rstrip("/").endswith(f"/studies/{sample.study}"), "no study RetrieveURL")
    return "top-level 0008,1190 present"


def _instance_path(sample: Sample, sop: str | None = None) -> str:
    sop = sop or next(iter(sample.series))
    return f"/studies/{sample.study}/series/{sample.series[sop]}/instances/{sop}"


def qido_levels(web: Web, sample: Sample) -> str:
    studies = _ok(web.get("/studies", StudyInstanceUID=sample.study), "studies").json()
    series = _ok(web.get(f"/studies/{sample.study}/series"), "series").json()
    instances = _ok(web.get(f"/studies/{sample.study}/instances"), "instances").json()
    _expect(len(studies) == 1, f"{len(studies)} studies")
    _expect(len(instances) == 3, f"{len(instances)} instances")
    _expect(len(series) == len(set(sample.series.values())), "series count")
    return "study, series and instance searches"


def qido_retrieve_url(web: Web, sample: Sample) -> str:
    for path in (
        "/studies",
        f"/studies/{sample.study}/series",
        f"/studies/{sample.study}/instances",
    ):
        params = {"StudyInstanceUID": sample.study} if path == "/studies" else {}
        for item in _ok(web.get(path, **params), path).json():
            _expect("00081190" in item, f"{path}: no RetrieveURL (0008,1190)")
    return "0008,1190 at all three levels"


def qido_name_case(web: Web, sample: Sample) -> str:
    _expect(bool(sample.name), "the stored study has no PatientName")
    found = _ok(
        web.get("/studies", StudyInstanceUID=sample.study, PatientName=sample.name.lower() + "*"),
        "search",
    ).json()
    _expect(len(found) == 1, "PatientName wild card did not match without regard to case")
    return "PatientName=lower-case* matched"


def qido_uid_list(web: Web, sample: Sample) -> str:
    sops = list(sample.series)
    found = _ok(
        web.get(f"/studies/{sample.study}/instances", SOPInstanceUID=f"{sops[0]},{sops[1]}"),
        "search",
    ).json()
    _expect(len(found) == 2, f"UID list matched {len(found)}, expected 2")
    return "UID list of two"


def qido_date_range(web: Web, sample: Sample) -> str:
    day = sample.study_date
    _expect(bool(day), "the stored study has no StudyDate")
    hit = _ok(
        web.get("/studies", StudyInstanceUID=sample.study, StudyDate=f"{day}-{day}"), "range"
    ).json()
    miss = _ok(
        web.get("/studies", StudyInstanceUID=sample.study, StudyDate="-19000101"), "range"
    ).json()
    _expect(len(hit) == 1 and not miss, "StudyDate range matched wrongly")
    return "closed and open ranges"


def qido_image_keys(web: Web, sample: Sample) -> str:
    found = _ok(
        web.get(f"/studies/{sample.study}/instances", ImageLaterality="L", ViewPosition="CC"),
        "search",
    ).json()
    _expect(len(found) == 1, f"ImageLaterality=L&ViewPosition=CC matched {len(found)}")
    return "ImageLaterality and ViewPosition"


def qido_paging(web: Web, sample: Sample) -> str:
    pages = [
        _ok(web.get(f"/studies/{sample.study}/instances", limit="2", offset=o), "page").json()
        for o in ("0", "2")
    ]
    _expect([len(p) for p in pages] == [2, 1], "limit/offset pages")
    return "limit and offset"


def qido_accept_charset(web: Web, sample: Sample) -> str:
    reply = web.get(
        "/studies", "application/dicom+json; charset=utf-8", StudyInstanceUID=sample.study
    )
    _expect(reply.status == 200, f"HTTP {reply.status}")
    return "charset=utf-8 accepted"


def qido_unknown_parameter(web: Web, sample: Sample) -> str:
    reply = web.get("/studies", StudyInstanceUID=sample.study, PatientWeight="70")
    _expect(reply.status in (200, 400), f"HTTP {reply.status}")
    return f"HTTP {reply.status}" + (" with Warning" if reply.header("Warning") else "")


def wado_instance(web: Web, sample: Sample) -> str:
    sop = next(iter(sample.series))
    reply = _ok(web.get(_instance_path(sample, sop), "application/dicom"), "instance")
    ds = pydicom.dcmread(io.BytesIO(reply.body))
    _expect(ds.SOPInstanceUID == sop, "wrong instance")
    return "application/dicom"


def wado_study(web: Web, sample: Sample) -> str:
    reply = _ok(
        web.get(f"/studies/{sample.study}", 'multipart/related; type="application/dicom"'),
        "study",
    )
    found = {pydicom.dcmread(io.BytesIO(payload(p))).SOPInstanceUID for p in parts(reply)}
    _expect(found == set(sample.series), "study parts")
    return "3 parts"


def wado_metadata_json(web: Web, sample: Sample) -> str:
    docs = _ok(
        web.get(f"/studies/{sample.study}/metadata", "application/dicom+json"), "metadata"
    ).json()
    _expect(len(docs) == 3 and all("7FE00010" in d for d in docs), "metadata documents")
    return "DICOM JSON with bulk data URIs"


def wado_metadata_xml(web: Web, sample: Sample) -> str:
    reply = _ok(
        web.get(
            f"/studies/{sample.study}/metadata",
            'multipart/related; type="application/dicom+xml"',
        ),
        "metadata",
    )
    roots = [ET.fromstring(payload(p)) for p in parts(reply)]
    _expect(len(roots) == 3, f"{len(roots)} XML parts")
    _expect(all(r.tag == f"{NATIVE_XML}NativeDicomModel" for r in roots), "not NativeDicomModel")
    return "PS3.19 Native DICOM Model"


def wado_frames(web: Web, sample: Sample) -> str:
    path = _instance_path(sample) + "/frames/1"
    reply = _ok(web.get(path, 'multipart/related; type="application/octet-stream"'), "frames")
    (part,) = parts(reply)
    ds = sample.datasets[0]
    _expect(len(payload(part)) >= ds.Rows * ds.Columns, "frame too short")
    _expect(bool(part.get("Content-Location")), "no Content-Location on the frame part")
    return "octet-stream frame with Content-Location"


def wado_frames_jpeg(web: Web, sample: Sample) -> str:
    reply = _ok(web.get(_instance_path(sample) + "/frames/1", "image/jpeg"), "jpeg frame")
    _expect(reply.body[:2] == b"\xff\xd8", "not a JPEG stream")
    return "image/jpeg frame"


def wado_bulkdata(web: Web, sample: Sample) -> str:
    path = _instance_path(sample) + "/bulkdata/7FE00010"
    reply = _ok(web.get(path, 'multipart/related; type="application/octet-stream"'), "bulk")
    (part,) = parts(reply)
    _expect(bool(part.get("Content-Location")), "no Content-Location on the bulk data part")
    return "Pixel Data with Content-Location"


def _rendered(media: str, magic: bytes) -> Check:
    def check(web: Web, sample: Sample) -> str:
        reply = _ok(web.get(_instance_path(sample) + "/rendered", media), media)
        _expect(reply.body.startswith(magic), f"not {media}")
        return media

    check.__name__ = "rendered_" + media.split("/")[1]
    return check


def wado_thumbnail(web: Web, sample: Sample) -> str:
    _ok(web.get(f"/studies/{sample.study}/thumbnail", "image/jpeg"), "thumbnail")
    return "study thumbnail"


def http_405_allow(web: Web, sample: Sample) -> str:
    reply = web.request("DELETE", f"/studies/{sample.study}/metadata")
    _expect(reply.status == 405, f"HTTP {reply.status}, expected 405")
    _expect(bool(reply.header("Allow")), "405 without Allow")
    return f"Allow: {reply.header('Allow')}"


def http_404(web: Web, sample: Sample) -> str:
    reply = web.get("/studies/1.2.3.4.5.6.7.8.9/metadata", "application/dicom+json")
    _expect(reply.status == 404, f"HTTP {reply.status}, expected 404")
    return "unknown study is 404"


WEB_CHECKS: list[tuple[str, Check]] = [
    ("STOW-RS", stow_store),
    ("STOW-RS", stow_retrieve_url),
    ("QIDO-RS", qido_levels),
    ("QIDO-RS", qido_retrieve_url),
    ("QIDO-RS", qido_name_case),
    ("QIDO-RS", qido_uid_list),
    ("QIDO-RS", qido_date_range),
    ("QIDO-RS", qido_image_keys),
    ("QIDO-RS", qido_paging),
    ("QIDO-RS", qido_accept_charset),
    ("QIDO-RS", qido_unknown_parameter),
    ("WADO-RS", wado_instance),
    ("WADO-RS", wado_study),
    ("WADO-RS", wado_metadata_json),
    ("WADO-RS", wado_metadata_xml),
    ("WADO-RS", wado_frames),
    ("WADO-RS", wado_frames_jpeg),
    ("WADO-RS", wado_bulkdata),
    ("WADO-RS", _rendered("image/jpeg", b"\xff\xd8")),
    ("WADO-RS", _rendered("image/png", b"\x89PNG")),
    ("WADO-RS", _rendered("image/gif", b"GIF8")),
    ("WADO-RS", wado_thumbnail),
    ("HTTP", http_405_allow),
    ("HTTP", http_404),
]


def _run(area: str, name: str, check: Callable[[], str]) -> Result:
    try:
        return Result(area, name, Outcome.PASSED, check())
    except Unsupported as exc:
        return Result(area, name, Outcome.UNSUPPORTED, str(exc))
    except CheckFailed as exc:
        return Result(area, name, Outcome.FAILED, str(exc))
    except Exception as exc:  # a crash in a check is a failure of the server's answer
        return Result(area, name, Outcome.FAILED, f"{type(exc).__name__}: {exc}"[:200])


def run_web(base: str, sample: Sample, token: str = "") -> Iterator[Result]:
    """Every DICOMweb check, in order; the first (STOW) must pass for the rest to run."""
    web = Web(base, token)
    for area, check in WEB_CHECKS:
        name = check.__name__.replace("_", "-")
        result = _run(area, name, lambda check=check: check(web, sample))  # type: ignore[misc]
        yield result
        if check is stow_store and result.outcome is not Outcome.PASSED:
            return
