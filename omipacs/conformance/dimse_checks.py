"""DIMSE checks of the conformance self-test: C-ECHO, C-FIND, C-GET and C-MOVE.

They query for the synthetic study the DICOMweb checks stored (so ``--dimse`` needs the
same archive behind both doors). The calling AE title must be one the server accepts;
C-MOVE additionally needs the server to know that AE title as a destination at the
port given with ``--move-port``, where a storage SCP is started for the check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from omipacs.conformance.checks import CheckFailed, Result, Sample, Unsupported, _expect, _run
from omipacs.dicom.uids import MG_FOR_PRESENTATION

TIMEOUT = 30


@dataclass(frozen=True)
class DimseTarget:
    """Where the server's DIMSE side listens, and who we are."""

    host: str
    port: int
    ae_title: str
    calling: str = "OMIPACSCHECK"
    move_port: int = 0


def parse_target(text: str, *, calling: str, move_port: int = 0) -> DimseTarget:
    """``HOST:PORT:AET`` (IPv6 hosts in brackets)."""
    host_port, sep, aet = text.rpartition(":")
    host, sep2, port = host_port.rpartition(":")
    if not (sep and sep2 and host and port.isdigit() and aet):
        raise ValueError("--dimse takes HOST:PORT:AET")
    return DimseTarget(host.strip("[]"), int(port), aet, calling, move_port)


def _associate(target: DimseTarget, *contexts: str, **kwargs: Any) -> Any:
    ae = AE(ae_title=target.calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    for context in contexts:
        ae.add_requested_context(context, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(target.host, target.port, ae_title=target.ae_title, **kwargs)
    if not assoc.is_established:
        raise CheckFailed("association not established")
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    if not accepted & set(contexts):
        assoc.release()
        raise Unsupported("presentation context rejected")
    return assoc


def _find(target: DimseTarget, model: str, **keys: Any) -> list[Dataset]:
    assoc = _associate(target, model)
    ident = Dataset()
    for key, value in keys.items():
        setattr(ident, key, value)
    matches: list[Dataset] = []
    final = -1
    try:
        for status, found in assoc.send_c_find(ident, model):
            if status is None or "Status" not in status:
                raise CheckFailed("no response")
            if status.Status in (0xFF00, 0xFF01):
                matches.append(found)
            else:
                final = int(status.Status)
    finally:
        assoc.release()
    _expect(final == 0, f"final status 0x{final:04X}")
    return matches


def echo(target: DimseTarget, sample: Sample) -> str:
    assoc = _associate(target, Verification)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    _expect(status is not None and status.Status == 0, "C-ECHO failed")
    return "Verification"


def find_patient(target: DimseTarget, sample: Sample) -> str:
    found = _find(
        target,
        PatientRootQueryRetrieveInformationModelFind,
        QueryRetrieveLevel="PATIENT",
        PatientName=sample.name.lower() + "*",
        PatientID="",
    )
    _expect(len(found) >= 1, f"{len(found)} patients")
    return "Patient Root, PATIENT, name any case"


def find_study(target: DimseTarget, sample: Sample) -> str:
    found = _find(
        target,
        StudyRootQueryRetrieveInformationModelFind,
        QueryRetrieveLevel="STUDY",
        StudyInstanceUID=sample.study,
        NumberOfStudyRelatedInstances="",
    )
    _expect(len(found) == 1, f"{len(found)} studies")
    return "Study Root, STUDY"


def find_series(target: DimseTarget, sample: Sample) -> str:
    found = _find(
        target,
        StudyRootQueryRetrieveInformationModelFind,
        QueryRetrieveLevel="SERIES",
        StudyInstanceUID=sample.study,
        SeriesInstanceUID="",
    )
    _expect(len(found) == len(set(sample.series.values())), f"{len(found)} series")
    return "Study Root, SERIES"


def find_image(target: DimseTarget, sample: Sample) -> str:
    found = _find(
        target,
        StudyRootQueryRetrieveInformationModelFind,
        QueryRetrieveLevel="IMAGE",
        StudyInstanceUID=sample.study,
        ImageLaterality="L",
        ViewPosition="CC",
        SOPInstanceUID="",
    )
    _expect(len(found) == 1, f"{len(found)} images")
    return "IMAGE with ImageLaterality, ViewPosition"


def _retrieve_ident(sample: Sample) -> Dataset:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = sample.study
    return ident


def get_study(target: DimseTarget, sample: Sample) -> str:
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    model = StudyRootQueryRetrieveInformationModelGet
    assoc = _associate(
        target,
        model,
        MG_FOR_PRESENTATION,
        ext_neg=[build_role(MG_FOR_PRESENTATION, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )
    try:
        statuses = [s for s, _ in assoc.send_c_get(_retrieve_ident(sample), model)]
    finally:
        assoc.release()
    _expect(bool(statuses) and statuses[-1].Status == 0, "C-GET did not succeed")
    _expect(set(received) == set(sample.series), f"{len(received)} of 3 received")
    return "3 instances over the same association"


def move_study(target: DimseTarget, sample: Sample) -> str:
    if not target.move_port:
        raise Unsupported("no --move-port given")
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    scp = AE(ae_title=target.calling)
    scp.add_supported_context(MG_FOR_PRESENTATION, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    server = scp.start_server(
        ("127.0.0.1", target.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    try:
        model = StudyRootQueryRetrieveInformationModelMove
        assoc = _associate(target, model)
        try:
            statuses = [
                s for s, _ in assoc.send_c_move(_retrieve_ident(sample), target.calling, model)
            ]
        finally:
            assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    _expect(bool(statuses), "no C-MOVE response")
    _expect(statuses[-1].Status == 0, f"final status 0x{statuses[-1].Status:04X}")
    _expect(set(received) == set(sample.series), f"{len(received)} of 3 received")
    return f"3 instances to {target.calling}"


DIMSE_CHECKS: list[Callable[[DimseTarget, Sample], str]] = [
    echo,
    find_patient,
    find_study,
    find_series,
    find_image,
    get_study,
    move_study,
]


def run_dimse(target: DimseTarget, sample: Sample) -> Iterator[Result]:
    """Every DIMSE check, in order."""
    for check in DIMSE_CHECKS:
        name = check.__name__.replace("_", "-")
        yield _run("DIMSE", name, lambda check=check: check(target, sample))  # type: ignore[misc]
