"""A withdrawn client leaves every saved cohort.

Saved cohorts are frozen member lists, and licences are bound to one version. Keeping
her in an old version would let a licence on it keep listing her, so she is removed
from *every* version; each amended version's member hash and counts are recomputed (the
hash a release recorded for that version then differs, which is how a researcher sees
that it was amended). Each cohort whose newest version held her also gets a new version
without her, whose description says it follows a withdrawal, so the cohort's history
shows the change (docs/withdrawal.md).
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from omipacs.cohorts.models import Cohort, CohortMember
from omipacs.cohorts.query import members_hash

AMENDED_NOTE = "Follows a client's withdrawal: she was removed from every version."


def drop_from_cohorts(session: Session, client_id: str) -> tuple[int, int]:
    """Remove ``client_id`` from every saved cohort; (versions amended, versions added)."""
    held = sorted(set(session.scalars(
        select(CohortMember.cohort_pk).where(CohortMember.client_id == client_id))))
    if not held:
        return 0, 0
    session.execute(delete(CohortMember).where(CohortMember.client_id == client_id)
                    .execution_options(synchronize_session=False))
    newest: dict[str, Cohort] = {}
    for row in session.scalars(select(Cohort).where(Cohort.pk.in_(held))):
        members = _members(session, row.pk)
        row.members_sha256 = members_hash(members)
        row.client_count = len({c for c, _ in members})
        row.study_count = len(members)
        latest = session.scalar(select(func.max(Cohort.version)).where(Cohort.name == row.name))
        if row.version == latest:
            newest[row.name] = row
    added = 0
    for name, row in sorted(newest.items()):
        members = _members(session, row.pk)
        new = Cohort(
            name=name,
            version=row.version + 1,
            description=(row.description + "\n" if row.description else "") + AMENDED_NOTE,
            definition=row.definition,
            definition_sha256=row.definition_sha256,
            members_sha256=members_hash(members),
            client_count=len({c for c, _ in members}),
            study_count=len(members),
        )
        session.add(new)
        session.flush()
        if members:
            session.execute(insert(CohortMember), [
                {"cohort_pk": new.pk, "client_id": c, "study_instance_uid": s}
                for c, s in members
            ])
        added += 1
    session.flush()
    return len(held), added


def _members(session: Session, cohort_pk: int) -> list[tuple[str, str]]:
    return [(c, s) for c, s in session.execute(
        select(CohortMember.client_id, CohortMember.study_instance_uid)
        .where(CohortMember.cohort_pk == cohort_pk)
        .order_by(CohortMember.client_id, CohortMember.study_instance_uid)
    )]
