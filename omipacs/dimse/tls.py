"""DICOM TLS for the SCP (PS3.15 B.1, the BCP 195 profile): server certificate, optional
client certificates, and pinning a peer to its certificate's common name.

Sites that send over a network need the association encrypted and, better, mutually
authenticated: the allow-list's AE title is a claim anyone can make, a certificate
signed by the archive's CA is not.
"""

from __future__ import annotations

import ssl
from typing import Any

from omipacs.config import DimseSettings, Peer


def server_context(settings: DimseSettings) -> ssl.SSLContext | None:
    """The SCP's TLS context, or None when DICOM TLS is not configured."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    if settings.tls_ca is not None:
        context.load_verify_locations(cafile=str(settings.tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_common_name(assoc: Any) -> str | None:
    """The common name of the peer's verified client certificate (None: no TLS or none)."""
    raw = getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)
    getpeercert = getattr(raw, "getpeercert", None)
    if getpeercert is None:
        return None
    cert = getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def certificate_matches(peer: Peer, assoc: Any) -> bool:
    """Whether the association's client certificate is the one ``peer`` is pinned to."""
    if not peer.tls_subject:
        return True
    return peer_common_name(assoc) == peer.tls_subject
