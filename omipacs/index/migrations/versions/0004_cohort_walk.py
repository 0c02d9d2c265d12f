"""cohort walk indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 20:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_client_outcome_walk", "client", ["outcome", "client_id"])
    op.create_index("ix_client_outcome_3d_walk", "client", ["outcome", "has_3d", "client_id"])


def downgrade() -> None:
    op.drop_index("ix_client_outcome_3d_walk", table_name="client")
    op.drop_index("ix_client_outcome_walk", table_name="client")
