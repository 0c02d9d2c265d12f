"""DICOM TLS: the SCP speaks TLS only, wants a client certificate signed by the archive's
CA when one is configured, and holds a pinned peer to its certificate's common name.

Certificates are made for the test with ``cryptography``; peers are pynetdicom SCUs on
real sockets.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from omipacs.bootstrap import open_archive
from omipacs.config import Peer, Settings
from omipacs.dimse import scp
from omipacs.errors import ConfigurationError
from omipacs.services import Services
from tests.conftest import make_settings


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
    *, ca: bool = False, server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(signer, hashes.SHA256())


def _write(
    path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    crt, pem = path.with_suffix(".crt"), path.with_suffix(".key")
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("omipacs test CA", ca_key, _name("omipacs test CA"), ca_key, ca=True)
    out: dict[str, Path] = {"ca": _write(d / "ca", ca, ca_key)[0]}
    for cn in ("localhost", "SITE_A", "INTRUDER"):
        key = ec.generate_private_key(ec.SECP256R1())
        crt, pem = _write(d / cn, _cert(cn, key, ca.subject, ca_key, server=cn == "localhost"),
                          key)
        out[f"{cn}.crt"], out[f"{cn}.key"] = crt, pem
    return out


@pytest.fixture
def tls_server(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Settings]:
    base = make_settings(tmp_path)
    settings = dataclasses.replace(base, dimse=dataclasses.replace(
        base.dimse,
        tls_cert=pki["localhost.crt"], tls_key=pki["localhost.key"], tls_ca=pki["ca"],
        peers=(Peer("SITE_A", tls_subject="SITE_A"), Peer("TOOL")),
    ))
    services: Services = open_archive(settings)
    server = scp.start(services)
    yield settings
    server.shutdown()
    services.close()


def _client(pki: dict[str, Path], cn: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    if cn is not None:
        context.load_cert_chain(str(pki[f"{cn}.crt"]), str(pki[f"{cn}.key"]))
    return context


def _echo(settings: Settings, ae_title: str, tls_args: tuple[ssl.SSLContext, str] | None) -> bool:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", settings.dimse.port, ae_title=settings.dimse.ae_title,
                         tls_args=tls_args)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status and status.Status == 0)


def test_tls_with_a_client_certificate_is_accepted(
    tls_server: Settings, pki: dict[str, Path]
) -> None:
    assert _echo(tls_server, "SITE_A", (_client(pki, "SITE_A"), "localhost"))
    # An unpinned peer may use any certificate the CA signed.
    assert _echo(tls_server, "TOOL", (_client(pki, "INTRUDER"), "localhost"))


def test_plain_tcp_and_missing_or_wrong_certificates_are_refused(
    tls_server: Settings, pki: dict[str, Path]
) -> None:
    assert not _echo(tls_server, "SITE_A", None)
    assert not _echo(tls_server, "SITE_A", (_client(pki, None), "localhost"))
    # A certificate signed by the CA, but not the one SITE_A is pinned to.
    assert not _echo(tls_server, "SITE_A", (_client(pki, "INTRUDER"), "localhost"))


def test_silent_connections_do_not_stop_tls_associations(
    tls_server: Settings, pki: dict[str, Path]
) -> None:
    """A TCP connection that never starts its TLS handshake holds only itself: the
    associations after it are accepted (each SCU gives up after 10 s, so a blocked
    server fails this test rather than hanging it)."""
    silent = [
        socket.create_connection(("127.0.0.1", tls_server.dimse.port), timeout=5)
        for _ in range(3)
    ]
    try:
        started = time.monotonic()
        assert _echo(tls_server, "SITE_A", (_client(pki, "SITE_A"), "localhost"))
        assert _echo(tls_server, "TOOL", (_client(pki, "INTRUDER"), "localhost"))
        assert time.monotonic() - started < tls_server.dimse.request_timeout
    finally:
        for sock in silent:
            sock.close()


def test_tls_settings_go_together(tmp_path: Path, pki: dict[str, Path]) -> None:
    base = make_settings(tmp_path).dimse
    with pytest.raises(ConfigurationError):
        dataclasses.replace(base, tls_cert=pki["localhost.crt"])
    with pytest.raises(ConfigurationError):
        dataclasses.replace(base, tls_ca=pki["ca"])
