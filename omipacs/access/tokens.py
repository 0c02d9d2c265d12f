"""Bearer tokens: 256 random bits, kept only as a SHA-256.

A token reads ``omi_<43 url-safe characters>``; its first 12 characters are its
visible prefix (shown in listings and the audit trail, useless for guessing). Lookup
is by the hash (an index), and the stored hash is then compared in constant time, so
neither the database's comparison nor ours leaks how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "omi_"
PREFIX_LENGTH = 12
_RANDOM_BYTES = 32


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: the secret (shown once) and what is stored."""

    secret: str
    prefix: str
    sha256: str


def new_token() -> NewToken:
    """A new random token."""
    secret = PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)
    return NewToken(secret, secret[:PREFIX_LENGTH], digest(secret))


def digest(secret: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check before any database work (malformed tokens get 401 at once)."""
    return (
        value.startswith(PREFIX)
        and 40 <= len(value) <= 64
        and value.isascii()
        and all(c.isalnum() or c in "-_" for c in value[len(PREFIX) :])
    )


def matches(secret: str, stored_sha256: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(digest(secret), stored_sha256)
