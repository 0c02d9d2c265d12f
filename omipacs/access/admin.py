"""Managing users, licences and tokens: the operations behind ``omipacs user|licence|token``
and ``/api/v1/admin``.

Functions take an open session (the caller commits) and return plain dataclasses. A
new token's secret is returned once and never stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omipacs.access import tokens
from omipacs.access.authenticate import utcnow
from omipacs.access.models import Licence, LicenceMember, Token, User
from omipacs.access.policy import Role, effective_state
from omipacs.access.scopes import format_scopes, parse_scopes
from omipacs.cohorts import get_cohort
from omipacs.cohorts.models import Cohort
from omipacs.errors import BadRequest, NotFound

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
LICENCE_STATES = ("active", "suspended", "revoked")


@dataclass(frozen=True)
class UserInfo:
    """A user as listed."""

    id: int
    email: str
    name: str
    organisation: str
    role: str
    active: bool

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class LicenceInfo:
    """A licence as listed."""

    id: int
    title: str
    purpose: str
    organisation: str
    cohort_id: int
    cohort_name: str
    cohort_version: int
    cohort_members_sha256: str
    scopes: str
    starts: date
    ends: date
    state: str
    members: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        """JSON form (dates as ISO strings)."""
        doc = dict(self.__dict__)
        doc["starts"] = self.starts.isoformat()
        doc["ends"] = self.ends.isoformat()
        doc["scopes"] = self.scopes.split(",") if self.scopes else []
        doc["members"] = list(self.members)
        return doc


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret."""

    id: int
    prefix: str
    user: str
    licence_id: int | None
    label: str
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        doc = dict(self.__dict__)
        for k in ("created_at", "expires_at", "last_used_at"):
            v = doc[k]
            doc[k] = v.isoformat() if isinstance(v, datetime) else None
        return doc


# -- users ---------------------------------------------------------------------------------


def _user_info(u: User) -> UserInfo:
    return UserInfo(u.pk, u.email, u.name, u.organisation, u.role, bool(u.active))


def find_user(session: Session, ref: str | int) -> User:
    """A user by ID or email."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        user = session.get(User, int(ref)) if int(ref) < 1 << 62 else None
    else:
        user = session.scalar(select(User).where(User.email == str(ref).strip().lower()))
    if user is None:
        raise NotFound("no such user")
    return user


def add_user(
    session: Session, email: str, role: str, *, name: str = "", organisation: str = ""
) -> UserInfo:
    """Create a user."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise BadRequest("email must look like name@organisation.example")
    try:
        role = Role(role).value
    except ValueError:
        raise BadRequest("role must be admin, curator or researcher") from None
    if session.scalar(select(User.pk).where(User.email == email)) is not None:
        raise BadRequest("a user with this email exists")
    user = User(email=email, role=role, name=name[:128], organisation=organisation[:128],
                active=True)
    session.add(user)
    session.flush()
    return _user_info(user)


def list_users(session: Session) -> list[UserInfo]:
    """Every user, by ID."""
    return [_user_info(u) for u in session.scalars(select(User).order_by(User.pk))]


def disable_user(session: Session, ref: str | int) -> UserInfo:
    """Disable a user and revoke every token they hold."""
    user = find_user(session, ref)
    user.active = False
    session.execute(
        update(Token)
        .where(Token.user_pk == user.pk, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return _user_info(user)


# -- licences ------------------------------------------------------------------------------


def _licence_info(session: Session, lic: Licence) -> LicenceInfo:
    cohort = session.get(Cohort, lic.cohort_pk)
    members = session.scalars(
        select(User.email)
        .join(LicenceMember, LicenceMember.user_pk == User.pk)
        .where(LicenceMember.licence_pk == lic.pk)
        .order_by(User.email)
    ).all()
    return LicenceInfo(
        id=lic.pk,
        title=lic.title,
        purpose=lic.purpose,
        organisation=lic.organisation,
        cohort_id=lic.cohort_pk,
        cohort_name=cohort.name if cohort else "",
        cohort_version=cohort.version if cohort else 0,
        cohort_members_sha256=cohort.members_sha256 if cohort else "",
        scopes=lic.scopes,
        starts=lic.starts,
        ends=lic.ends,
        state=effective_state(lic.state, lic.starts, lic.ends, utcnow().date()),
        members=tuple(members),
    )


def find_licence(session: Session, licence_id: int) -> Licence:
    """A licence by ID."""
    lic = session.get(Licence, licence_id) if 0 < licence_id < 1 << 62 else None
    if lic is None:
        raise NotFound("no such licence")
    return lic


def create_licence(
    session: Session,
    *,
    title: str,
    cohort_id: int,
    scopes: str,
    ends: date,
    starts: date | None = None,
    purpose: str = "",
    organisation: str = "",
    members: list[str] | None = None,
    request_id: int | None = None,
) -> LicenceInfo:
    """Create a licence bound to a saved cohort version (which never changes)."""
    if not title.strip():
        raise BadRequest("a licence needs a title")
    get_cohort(session, cohort_id, with_members=False)  # 404 for an unknown cohort
    granted = parse_scopes(scopes)
    if not granted:
        raise BadRequest("a licence grants at least one data scope")
    starts = starts or utcnow().date()
    if ends < starts:
        raise BadRequest("a licence must end after it starts")
    lic = Licence(
        title=title.strip()[:256],
        purpose=purpose,
        organisation=organisation[:128],
        cohort_pk=cohort_id,
        scopes=format_scopes(granted),
        starts=starts,
        ends=ends,
        state="active",
        request_pk=request_id,
    )
    session.add(lic)
    session.flush()
    for ref in members or []:
        add_member(session, lic.pk, ref)
    return _licence_info(session, lic)


def add_member(session: Session, licence_id: int, user_ref: str | int) -> LicenceInfo:
    """Let a user work under a licence."""
    lic = find_licence(session, licence_id)
    user = find_user(session, user_ref)
    exists = session.scalar(
        select(LicenceMember.pk).where(
            LicenceMember.licence_pk == lic.pk, LicenceMember.user_pk == user.pk
        )
    )
    if exists is None:
        session.add(LicenceMember(licence_pk=lic.pk, user_pk=user.pk))
        session.flush()
    return _licence_info(session, lic)


def list_licences(session: Session) -> list[LicenceInfo]:
    """Every licence, by ID."""
    rows = session.scalars(select(Licence).order_by(Licence.pk))
    return [_licence_info(session, lic) for lic in rows]


def show_licence(session: Session, licence_id: int) -> LicenceInfo:
    """One licence."""
    return _licence_info(session, find_licence(session, licence_id))


def set_licence_state(session: Session, licence_id: int, state: str) -> LicenceInfo:
    """Suspend, reinstate or revoke a licence (a revoked one stays revoked)."""
    if state not in LICENCE_STATES:
        raise BadRequest(f"state must be one of {', '.join(LICENCE_STATES)}")
    lic = find_licence(session, licence_id)
    if lic.state == "revoked" and state != "revoked":
        raise BadRequest("a revoked licence cannot be reinstated")
    lic.state = state
    return _licence_info(session, lic)


def rebind_licence(session: Session, licence_id: int, cohort_id: int) -> LicenceInfo:
    """Move a licence to a newer saved version of its cohort (say, one holding a new
    study of a member). Versions never change, so this is how a licence's data grows;
    another cohort, or an older version, is refused: that would be a different licence.
    The caller audits it; the licence's next release compares every file."""
    lic = find_licence(session, licence_id)
    if lic.state == "revoked":
        raise BadRequest("a revoked licence cannot be re-bound")
    get_cohort(session, cohort_id, with_members=False)  # 404 for an unknown cohort
    current, target = session.get(Cohort, lic.cohort_pk), session.get(Cohort, cohort_id)
    assert current is not None and target is not None
    if target.name != current.name:
        raise BadRequest(f"a licence moves only to a version of its cohort {current.name!r}")
    if target.version <= current.version:
        raise BadRequest(f"the licence is on version {current.version}: "
                         "it moves only to a newer version")
    lic.cohort_pk = target.pk
    session.flush()
    return _licence_info(session, lic)


# -- tokens --------------------------------------------------------------------------------


def _token_info(t: Token, email: str) -> TokenInfo:
    return TokenInfo(
        t.pk, t.prefix, email, t.licence_pk, t.label, t.created_at, t.expires_at,
        t.last_used_at, t.revoked_at is not None,
    )


def create_token(
    session: Session,
    user_ref: str | int,
    *,
    licence_id: int | None = None,
    expires: date | None = None,
    label: str = "",
) -> tuple[str, TokenInfo]:
    """A new token for a user: (the secret, shown once; what is listed)."""
    user = find_user(session, user_ref)
    if not user.active:
        raise BadRequest("the user is disabled")
    if licence_id is not None:
        find_licence(session, licence_id)
        if user.role == Role.RESEARCHER:
            member = session.scalar(
                select(LicenceMember.pk).where(
                    LicenceMember.licence_pk == licence_id, LicenceMember.user_pk == user.pk
                )
            )
            if member is None:
                raise BadRequest("the user is not a member of this licence")
    expires_at = None
    if expires is not None:
        if expires <= utcnow().date():
            raise BadRequest("a token must expire in the future")
        expires_at = datetime.combine(expires, datetime.min.time())
    new = tokens.new_token()
    row = Token(
        user_pk=user.pk,
        licence_pk=licence_id,
        prefix=new.prefix,
        sha256=new.sha256,
        label=label[:128],
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return new.secret, _token_info(row, user.email)


def list_tokens(session: Session, user_ref: str | int | None = None) -> list[TokenInfo]:
    """Tokens (all, or one user's), by ID."""
    stmt = select(Token, User.email).join(User, Token.user_pk == User.pk).order_by(Token.pk)
    if user_ref is not None:
        stmt = stmt.where(Token.user_pk == find_user(session, user_ref).pk)
    return [_token_info(t, email) for t, email in session.execute(stmt)]


def revoke_token(session: Session, ref: str) -> TokenInfo:
    """Revoke a token by ID or visible prefix."""
    stmt = select(Token, User.email).join(User, Token.user_pk == User.pk)
    if ref.isdigit():
        stmt = stmt.where(Token.pk == (int(ref) if int(ref) < 1 << 62 else 0))
    else:
        stmt = stmt.where(Token.prefix == ref[: tokens.PREFIX_LENGTH])
    rows = session.execute(stmt).all()
    if not rows:
        raise NotFound("no such token")
    if len(rows) > 1:
        raise BadRequest("more than one token has this prefix: use its ID")
    token, email = rows[0]
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return _token_info(token, email)


def default_term(starts: date, years: int = 3) -> date:
    """The brochure's typical licence term: three years less a day."""
    try:
        return starts.replace(year=starts.year + years) - timedelta(days=1)
    except ValueError:  # 29 February
        return starts.replace(year=starts.year + years, day=28)
