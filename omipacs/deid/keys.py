"""The archive-wide de-identification secret and the sub-keys derived from it.

One secret, held outside the index (a file or an environment variable named in
``[deid]``), gives separate keys for client pseudonyms, date offsets, UIDs and device
identifiers, derived as ``HMAC-SHA256(secret, "omipacs-deid-v1:" + label)``. Separate
keys mean that one published pseudonym never helps to guess another kind, while a single
file is all an operator has to protect and back up. Losing the secret means the archive
can no longer link new data to old pseudonyms; leaking it lets anyone who holds an NHS
number find that woman's client ID, so it belongs with the other secrets of the host
(mode 0600, or a KMS that writes the file or the variable at start-up).

The server refuses to start without a key (:class:`~omipacs.errors.ConfigurationError`).
``omipacs demo`` creates a random key marked as a demo key, and the mark travels with the
keys (:attr:`DeidKeys.demo`) so logs and the UI can say that the data are not protected
by a managed secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from omipacs.config import DeidSettings
from omipacs.errors import ConfigurationError

logger = logging.getLogger(__name__)

MIN_SECRET_BYTES: Final = 32
"""Shortest accepted secret: 256 bits, the HMAC-SHA256 key size."""

DEMO_HEADER: Final = b"# omipacs DEMO de-identification key: not for real patient data\n"
"""First line of a key file made by :func:`create_demo_key`."""

_LABEL_PREFIX: Final = b"omipacs-deid-v1:"


@dataclass(frozen=True)
class DeidKeys:
    """Sub-keys for each kind of pseudonym, derived from one secret.

    The key bytes are excluded from ``repr`` so that they never reach a log line.
    """

    client_key: bytes = field(repr=False)
    """Keys the client pseudonym HMAC (NHS number or issuer + local ID)."""
    date_key: bytes = field(repr=False)
    """Keys the per-client date offset."""
    uid_key: bytes = field(repr=False)
    """Keys the UID remapping."""
    device_key: bytes = field(repr=False)
    """Keys device serial numbers and station names (Retain Device Identity)."""
    key_id: str
    """A short public fingerprint of the secret, to tell keys apart in logs."""
    demo: bool = False
    """True for a key made by :func:`create_demo_key`."""

    @classmethod
    def from_secret(cls, secret: bytes, *, demo: bool = False) -> DeidKeys:
        """Derive the sub-keys from ``secret`` (at least :data:`MIN_SECRET_BYTES` bytes)."""
        _check_strength(secret)

        def derive(label: str) -> bytes:
            return hmac.new(secret, _LABEL_PREFIX + label.encode(), hashlib.sha256).digest()

        return cls(
            client_key=derive("client"),
            date_key=derive("date"),
            uid_key=derive("uid"),
            device_key=derive("device"),
            key_id=derive("fingerprint").hex()[:12],
            demo=demo,
        )


def _check_strength(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"the de-identification key is too short: {len(secret)} bytes, at least "
            f"{MIN_SECRET_BYTES} bytes (64 hex digits) of random data are required"
        )
    if len(set(secret)) < 8:
        raise ConfigurationError(
            "the de-identification key looks like a placeholder (too few distinct bytes); "
            "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )


def parse_secret(data: bytes) -> tuple[bytes, bool]:
    """Decode a key file or variable: ``(secret, is_demo)``.

    A first line equal to :data:`DEMO_HEADER` marks a demo key. The rest is taken as
    hexadecimal when it is only hex digits (surrounding whitespace ignored), otherwise
    as raw bytes with surrounding ASCII whitespace stripped.
    """
    demo = data.startswith(DEMO_HEADER)
    if demo:
        data = data[len(DEMO_HEADER):]
    text = data.strip()
    if text and len(text) % 2 == 0 and all(chr(b) in string.hexdigits for b in text):
        return bytes.fromhex(text.decode("ascii")), demo
    return text, demo


def load_keys(settings: DeidSettings, environ: Mapping[str, str] = os.environ) -> DeidKeys:
    """Load the secret named by ``settings`` and derive the keys.

    ``settings.key_file`` wins when set (environment variables in it are expanded, so
    ``$CREDENTIALS_DIRECTORY/deid.key`` names a systemd credential); otherwise the
    environment variable named by ``settings.key_env`` (``OMIPACS_DEID_KEY`` by default)
    is read. The secret never comes from the index or from ``config.toml`` itself. A key
    file on a persistent filesystem is accepted with a warning: it belongs on a tmpfs
    written at start by a secret store (docs/deidentification.md).

    Raises
    ------
    ConfigurationError
        No key is configured, the file cannot be read, or the secret is too short.
        Messages name the setting, never the secret.
    """
    if settings.key_file is not None:
        path = Path(os.path.expandvars(str(settings.key_file)))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(f"de-identification key file {path} not found") from None
        except OSError as exc:
            raise ConfigurationError(
                f"de-identification key file {path} cannot be read: {exc.strerror}"
            ) from None
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if mode & 0o077:
            logger.warning("de-identification key file %s is readable by other users", path)
        fs_type = filesystem_type(path)
        if fs_type is not None and fs_type not in MEMORY_FILESYSTEMS:
            logger.warning(
                "de-identification key file %s is on a %s filesystem: keep the key off disk "
                "(a tmpfs file written at start by a secret store; docs/deidentification.md)",
                path, fs_type,
            )
        where = f"key file {path}"
    else:
        value = environ.get(settings.key_env, "") if settings.key_env else ""
        if not value.strip():
            raise ConfigurationError(
                "de-identification is enabled but no key is configured: set [deid] key_file "
                f"or the {settings.key_env or 'OMIPACS_DEID_KEY'} environment variable to "
                "64 hex digits of random data (`omipacs demo` creates a demo key)"
            )
        data = value.encode("utf-8", "surrogateescape")
        where = f"environment variable {settings.key_env}"
    secret, demo = parse_secret(data)
    try:
        keys = DeidKeys.from_secret(secret, demo=demo)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.reason}") from None
    if keys.demo:
        logger.warning(
            "de-identification uses a DEMO key (%s, id %s): not for real patient data",
            where, keys.key_id,
        )
    else:
        logger.info("de-identification key loaded from %s (id %s)", where, keys.key_id)
    return keys


MEMORY_FILESYSTEMS: Final = frozenset({"tmpfs", "ramfs"})
"""Filesystems that live in memory: a key file there is gone when the host stops."""


def filesystem_type(path: Path, mounts: Path = Path("/proc/mounts")) -> str | None:
    """The type of the filesystem holding ``path`` (Linux ``/proc/mounts``), or ``None``.

    Used to warn when the key sits on a persistent disk. The longest mount point that
    contains the resolved path wins.
    """
    try:
        target = str(path.resolve())
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def create_demo_key(path: Path) -> DeidKeys:
    """Write a new random demo key to ``path`` (mode 0600) and return its keys.

    If ``path`` already holds a demo key, that key is loaded instead, so ``omipacs demo``
    can be run again over the same data. A file that is not a demo key is never
    overwritten.

    Raises
    ------
    ConfigurationError
        ``path`` exists and holds a real (non-demo) key, or it cannot be written.
    """
    if path.exists():
        secret, demo = parse_secret(path.read_bytes())
        if not demo:
            raise ConfigurationError(
                f"{path} holds a key that is not a demo key; refusing to replace it"
            )
        logger.warning("reusing the DEMO de-identification key in %s", path)
        return DeidKeys.from_secret(secret, demo=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(MIN_SECRET_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigurationError(f"cannot create demo key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(DEMO_HEADER + secret.hex().encode("ascii") + b"\n")
    keys = DeidKeys.from_secret(secret, demo=True)
    logger.warning(
        "created a DEMO de-identification key in %s (id %s): not for real patient data",
        path, keys.key_id,
    )
    return keys
