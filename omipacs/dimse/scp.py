"""The DIMSE SCP: a pynetdicom AE configured from settings, bound to our handlers.

Large C-STORE data sets are spooled to disk by pynetdicom as they arrive
(``STORE_RECV_CHUNKED_DATASET``) into the archive's spool directory, so a 1.5 GB
tomosynthesis object is never held in memory and is later renamed, not copied, into
the blob store.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from omipacs.config import Settings
from omipacs.dicom.uids import (
    ACCEPTED_TRANSFER_SYNTAXES,
    NATIVE_TRANSFER_SYNTAXES,
    STORAGE_SOP_CLASSES,
)
from omipacs.dimse import admission, guard, handlers, qr, stored, tls
from omipacs.errors import ConfigurationError
from omipacs.services import Services

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to expose DIMSE beyond loopback without an allow-list (docs/architecture.md)."""
    dimse = settings.dimse
    if dimse.processes < 1:
        raise ConfigurationError("[dimse] processes must be at least 1")
    if is_loopback(dimse.host):
        return
    if dimse.allow_any_peer:
        raise ConfigurationError(
            "dimse.allow_any_peer is for development on a loopback address only"
        )
    if not dimse.peers:
        raise ConfigurationError(
            "refusing to listen for DICOM on a non-loopback address with an empty "
            "[[dimse.peers]] allow-list"
        )


def build_ae(settings: Settings) -> AE:
    """An AE with our presentation contexts, limits and timeouts."""
    dimse = settings.dimse
    ae = AE(ae_title=dimse.ae_title)
    ae.maximum_associations = dimse.max_associations
    ae.acse_timeout = dimse.acse_timeout
    ae.dimse_timeout = dimse.dimse_timeout
    ae.network_timeout = dimse.network_timeout
    ae.maximum_pdu_size = dimse.max_pdu_size
    # Called AE title and allow-list checks happen in handle_requested, where the
    # peer's address is known too.
    ae.require_called_aet = False
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        # scu_role: a C-GET peer that offers a storage context with the SCP role gets
        # its instances back over that context (PS3.7 D.3.3.4 role selection).
        ae.add_supported_context(
            sop_class, list(ACCEPTED_TRANSFER_SYNTAXES), scu_role=True, scp_role=True
        )
    for model in (*qr.FIND_MODELS, *qr.MOVE_MODELS, *qr.GET_MODELS):
        # Identifiers are small: little endian only (no deflate, no retired big endian).
        ae.add_supported_context(model, sorted(NATIVE_TRANSFER_SYNTAXES))
    return ae


def spool_c_store_data_sets(spool_dir: Path) -> None:
    """Have pynetdicom write incoming C-STORE data sets into our spool.

    pynetdicom 3.0 spools each data set with ``NamedTemporaryFile`` (module
    ``pynetdicom.dimse_messages``) in the default temporary directory; given ``dir=`` the
    file lands on the blob store's filesystem, so storing it is a rename. Only that name
    in that module changes, not ``tempfile.tempdir`` for the whole process. If pynetdicom
    stops using it this way, starting fails here (and tests/dimse/test_scp.py says so).
    """
    from pynetdicom import dimse_messages

    current = getattr(dimse_messages, "NamedTemporaryFile", None)
    original = current.func if isinstance(current, functools.partial) else current
    if original is not tempfile.NamedTemporaryFile:
        raise RuntimeError(
            "pynetdicom.dimse_messages no longer uses tempfile.NamedTemporaryFile: "
            "check how this pynetdicom spools C-STORE data sets"
        )
    dimse_messages.NamedTemporaryFile = functools.partial(  # type: ignore[attr-defined]
        tempfile.NamedTemporaryFile, dir=str(spool_dir)
    )


def start(
    services: Services,
    *,
    block: bool = False,
    server_class: type[Any] | None = None,
    extra_handlers: list[Any] | None = None,
) -> Any:
    """Start the SCP; returns the server (call ``shutdown()``) unless ``block``.

    ``server_class`` (an :class:`~omipacs.dimse.admission.AdmittingServer` on a
    listening socket shared by several processes, see :mod:`omipacs.dimse.pool`) and
    ``extra_handlers`` (bound after ours) serve several SCP processes on one port.
    """
    settings = services.settings
    check_exposure(settings)
    guard.install()
    stored.install()
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.LOG_HANDLER_LEVEL = "none"
    spool_c_store_data_sets(services.spool.dir)
    ae = build_ae(settings)
    dimse = settings.dimse
    door = admission.Admission(
        max_associations=dimse.max_associations,
        max_pending=dimse.max_pending_connections,
        max_pending_per_address=dimse.max_pending_per_address,
        request_timeout=dimse.request_timeout,
    )
    # Ours is the association limit (accepted associations only); pynetdicom's own
    # count includes connections still waiting for a request, so it is set past ours.
    ae.maximum_associations = dimse.max_associations + dimse.max_pending_connections
    bound: list[Any] = [
        (evt.EVT_REQUESTED, handlers.handle_requested, [settings.dimse]),
        (evt.EVT_REQUESTED, admission.handle_requested, [door]),
        (evt.EVT_CONN_CLOSE, admission.handle_closed, [door]),
        (evt.EVT_C_ECHO, handlers.handle_echo),
        (evt.EVT_C_STORE, handlers.handle_store, [services]),
        (evt.EVT_CONN_CLOSE, handlers.handle_closed, [services]),
        (evt.EVT_C_FIND, qr.handle_find, [services]),
        (evt.EVT_C_MOVE, qr.handle_move, [services]),
        (evt.EVT_C_GET, qr.handle_get, [services]),
    ]
    bound += extra_handlers or []
    address = (settings.dimse.host, settings.dimse.port)
    context = tls.server_context(settings.dimse)
    log.info(
        "DICOM SCP %s listening on %s:%d%s", settings.dimse.ae_title, *address,
        " (DICOM TLS)" if context else "",
    )
    server = cast(
        admission.AdmittingServer,
        ae.make_server(
            address,
            evt_handlers=bound,
            ssl_context=context,
            server_class=server_class or admission.AdmittingServer,
        ),
    )
    server.admission = door
    server.watchdog_stop = threading.Event()
    admission.watch(door, server.watchdog_stop)
    if block:
        try:
            server.serve_forever()
        finally:
            server.watchdog_stop.set()
        return None
    threading.Thread(target=server.serve_forever, name="dimse-server", daemon=True).start()
    return server
