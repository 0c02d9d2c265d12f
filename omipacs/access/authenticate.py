"""Who is calling: a bearer token (ours, or a JWT from the configured OpenID issuer).

Resolution reads the token, its user and the licences the user may use now. The result
is cached per token for a few seconds (``[auth] cache_seconds``), so a busy viewer does
not cost three queries per frame, while a revoked token, a disabled user or a suspended
licence stops working within that time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omipacs.access import tokens
from omipacs.access.models import Licence, LicenceMember, Token, User
from omipacs.access.policy import LOCAL_ADMIN, LicenceGrant, Principal, Role, grants, in_force
from omipacs.access.scopes import parse_scopes
from omipacs.config import AuthSettings
from omipacs.errors import Unauthorized


def utcnow() -> datetime:
    """Naive UTC, as the index stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def usable_licences(session: Session, user_pk: int, today: date) -> tuple[LicenceGrant, ...]:
    """Licences ``user_pk`` is a member of and that are in force on ``today``."""
    rows = session.execute(
        select(Licence.pk, Licence.cohort_pk, Licence.scopes, Licence.state, Licence.starts,
               Licence.ends)
        .join(LicenceMember, LicenceMember.licence_pk == Licence.pk)
        .where(LicenceMember.user_pk == user_pk)
    ).all()
    return grants(
        (pk, cohort, parse_scopes(scopes))
        for pk, cohort, scopes, state, starts, ends in rows
        if in_force(state, starts, ends, today)
    )


def principal_for_user(
    session: Session, user: User, *, token: Token | None = None
) -> Principal:
    """The principal of an active user (and the token they presented)."""
    today = utcnow().date()
    licences = usable_licences(session, user.pk, today) if user.role == Role.RESEARCHER else ()
    return Principal(
        email=user.email,
        role=Role(user.role),
        user_id=user.pk,
        token_prefix=token.prefix if token else "",
        token_id=token.pk if token else None,
        bound_licence=token.licence_pk if token else None,
        licences=licences,
    )


def resolve_token(session: Session, secret: str) -> Principal:
    """The principal behind one of our tokens, or :class:`Unauthorized`."""
    if not tokens.looks_like_token(secret):
        raise Unauthorized("malformed token")
    row = session.execute(
        select(Token, User)
        .join(User, Token.user_pk == User.pk)
        .where(Token.sha256 == tokens.digest(secret))
    ).first()
    if row is None or not tokens.matches(secret, row[0].sha256):
        raise Unauthorized("unknown token")
    token, user = row
    if token.revoked_at is not None:
        raise Unauthorized("token revoked")
    if token.expires_at is not None and token.expires_at <= utcnow():
        raise Unauthorized("token expired")
    if not user.active:
        raise Unauthorized("user disabled")
    return principal_for_user(session, user, token=token)


class OidcVerifier:
    """JWTs from one OpenID Connect issuer, checked with PyJWT against its JWKS."""

    def __init__(self, settings: AuthSettings) -> None:
        import jwt

        self._jwt = jwt
        self._settings = settings
        self._keys = jwt.PyJWKClient(settings.oidc.jwks_url, cache_keys=True, lifespan=300)

    def claims(self, raw: str) -> dict[str, Any]:
        """The verified claims of ``raw`` (signature, issuer, audience, expiry)."""
        s = self._settings.oidc
        try:
            key = self._keys.get_signing_key_from_jwt(raw)
            found: dict[str, Any] = self._jwt.decode(
                raw,
                key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"],
                audience=s.audience,
                issuer=s.issuer,
                options={"require": ["exp", "iss", "aud"]},
                leeway=30,
            )
        except self._jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid identity token ({type(exc).__name__})") from None
        return found

    def resolve(self, session: Session, raw: str) -> Principal:
        """The user the token's configured claim names (by email or OIDC subject)."""
        claims = self.claims(raw)
        value = claims.get(self._settings.oidc.claim)
        if not isinstance(value, str) or not value:
            raise Unauthorized(f"identity token has no {self._settings.oidc.claim} claim")
        user = session.scalar(
            select(User).where((User.email == value.lower()) | (User.oidc_subject == value))
        )
        if user is None or not user.active:
            raise Unauthorized("no active user for this identity")
        return principal_for_user(session, user)


@dataclass
class _Cached:
    principal: Principal
    until: float


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` (one per process)."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._oidc = OidcVerifier(settings) if settings.oidc.issuer else None

    @property
    def required(self) -> bool:
        """False for the single-user ``none`` mode."""
        return self.settings.mode != "none"

    def authenticate(self, session_factory: Any, header: str | None) -> Principal:
        """The caller, or :class:`Unauthorized` (the web layer adds WWW-Authenticate)."""
        if not self.required:
            return LOCAL_ADMIN
        if not header:
            raise Unauthorized("authentication required")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or len(credential) > 8192:
            raise Unauthorized("expected Authorization: Bearer <token>")
        key = tokens.digest(credential)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit.until > now:
            return hit.principal
        with session_factory() as session:
            if credential.startswith(tokens.PREFIX) or self._oidc is None:
                principal = resolve_token(session, credential)
            else:
                principal = self._oidc.resolve(session, credential)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = _Cached(principal, now + self.settings.cache_seconds)
        return principal

    def forget(self) -> None:
        """Drop cached principals (after an admin change in this process)."""
        with self._lock:
            self._cache.clear()
