"""study list order index: newest studies first without sorting the whole table

Revision ID: 0008_study_newest
Revises: 0007_releases
Create Date: 2026-12-07 19:20:00.000000

Study lists (OHIF's, every ``/studies`` and the study walk of ``/series`` and
``/instances`` searches that span studies) are ordered by StudyDate, StudyTime and
primary key, newest first (omipacs/query/search.py). Without an index in exactly that
order PostgreSQL sorts every matching study to return the first page, which grows with
the archive; with it a page reads its own rows. The expression differs per backend:
PostgreSQL compares times bytewise (``COLLATE "C"``) and puts missing dates last; SQLite
does both by default (and has no ``NULLS LAST`` in an index).
"""

from __future__ import annotations

from alembic import op

revision = "0008_study_newest"
down_revision = "0007_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_study_newest ON study"
            ' (study_date DESC NULLS LAST, study_time COLLATE "C" DESC, pk DESC)'
        )
    else:
        op.execute(
            "CREATE INDEX ix_study_newest ON study (study_date DESC, study_time DESC, pk DESC)"
        )


def downgrade() -> None:
    op.drop_index("ix_study_newest", table_name="study")
