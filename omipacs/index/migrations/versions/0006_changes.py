"""changes: the change feed and the withdrawal tombstone

Revision ID: 0006_changes
Revises: 0005
Create Date: 2026-12-07 18:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_changes"
down_revision = "0005"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # AUTOINCREMENT (SQLite) and an identity column (PostgreSQL): a sequence number is
    # never handed out twice, also after the newest events are deleted (a withdrawal).
    op.create_table(
        "change_event",
        sa.Column("seq", SEQ, sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("client_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_change_event")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_event_client_id", "change_event", ["client_id"], unique=False)
    op.create_index(
        "ix_change_event_study", "change_event", ["study_instance_uid"], unique=False
    )
    op.create_table(
        "withdrawal",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_withdrawal")),
        sa.UniqueConstraint("client_hash", name=op.f("uq_withdrawal_client_hash")),
        sa.UniqueConstraint("source_hash", name=op.f("uq_withdrawal_source_hash")),
    )


def downgrade() -> None:
    op.drop_table("withdrawal")
    op.drop_index("ix_change_event_study", table_name="change_event")
    op.drop_index("ix_change_event_client_id", table_name="change_event")
    op.drop_table("change_event")
