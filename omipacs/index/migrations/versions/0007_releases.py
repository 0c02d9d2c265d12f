"""releases: a licence's releases and the batches that journal their progress

Revision ID: 0007_releases
Revises: 0006_changes
Create Date: 2026-12-07 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_releases"
down_revision = "0006_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "release",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("licence_pk", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("base_number", sa.Integer(), nullable=True),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.Column("files_total", sa.BigInteger(), nullable=False),
        sa.Column("files_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("batches_total", sa.Integer(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=False),
        sa.Column("verified_at", sa.DateTime(), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["licence_pk"], ["licence.pk"], name=op.f("fk_release_licence_pk_licence")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_release")),
        sa.UniqueConstraint("licence_pk", "number", name=op.f("uq_release_licence_pk")),
    )
    op.create_index(op.f("ix_release_licence_pk"), "release", ["licence_pk"], unique=False)
    op.create_table(
        "release_batch",
        sa.Column("release_pk", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("files", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_pk"], ["release.pk"], name=op.f("fk_release_batch_release_pk_release"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("release_pk", "number", name=op.f("pk_release_batch")),
    )


def downgrade() -> None:
    op.drop_table("release_batch")
    op.drop_index(op.f("ix_release_licence_pk"), table_name="release")
    op.drop_table("release")
