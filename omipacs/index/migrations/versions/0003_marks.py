"""marks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 18:02:41.511204
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FEATURES = (
    "architectural_distortion",
    "dystrophic",
    "fat_necrosis",
    "focal_asymmetry",
    "mass",
    "suspicious_calcifications",
    "milk_of_calcium",
    "other_benign_cluster",
    "plasma_cell_mastitis",
    "skin",
    "with_calcification",
    "suture_calcification",
    "vascular",
)


def upgrade() -> None:

    op.create_table(
        "mark",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("omidb_mark_id", sa.String(length=32), nullable=True),
        sa.Column("instance_pk", sa.Integer(), nullable=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("frame_no", sa.Integer(), nullable=True),
        sa.Column("col_min", sa.Float(), nullable=False),
        sa.Column("row_min", sa.Float(), nullable=False),
        sa.Column("col_max", sa.Float(), nullable=False),
        sa.Column("row_max", sa.Float(), nullable=False),
        sa.Column("graphic_type", sa.String(length=16), nullable=False),
        sa.Column("conspicuity", sa.String(length=16), nullable=True),
        sa.Column("mass_class", sa.String(length=32), nullable=True),
        sa.Column("benign_class", sa.String(length=32), nullable=True),
        *(sa.Column(name, sa.Boolean(), nullable=False) for name in FEATURES),
        sa.Column("finding_kind", sa.String(length=32), nullable=False),
        sa.Column("finding_code", sa.String(length=96), nullable=False),
        sa.Column("finding_meaning", sa.String(length=64), nullable=False),
        sa.Column("pathology", sa.String(length=16), nullable=True),
        sa.Column("reader", sa.String(length=64), nullable=False),
        sa.Column("tracking_uid", sa.String(length=64), nullable=False),
        sa.Column("sr_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sr_instance_pk", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_pk"],
            ["instance.pk"],
            name=op.f("fk_mark_instance_pk_instance"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sr_instance_pk"],
            ["instance.pk"],
            name=op.f("fk_mark_sr_instance_pk_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_mark")),
    )
    with op.batch_alter_table("mark", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mark_image_reader", ["sop_instance_uid", "reader", "current"], unique=False
        )
        batch_op.create_index("ix_mark_current_kind", ["current", "finding_kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_mark_omidb_mark_id"), ["omidb_mark_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mark_instance_pk"), ["instance_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_mark_conspicuity"), ["conspicuity"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_mark_sr_instance_uid"), ["sr_instance_uid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_mark_sr_instance_pk"), ["sr_instance_pk"], unique=False
        )

    op.create_table(
        "mark_lesion",
        sa.Column("mark_pk", sa.Integer(), nullable=False),
        sa.Column("nbss_lesion_no", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["mark_pk"],
            ["mark.pk"],
            name=op.f("fk_mark_lesion_mark_pk_mark"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mark_pk", "nbss_lesion_no", name=op.f("pk_mark_lesion")),
    )


def downgrade() -> None:

    op.drop_table("mark_lesion")
    with op.batch_alter_table("mark", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mark_sr_instance_pk"))
        batch_op.drop_index(batch_op.f("ix_mark_sr_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_mark_conspicuity"))
        batch_op.drop_index(batch_op.f("ix_mark_instance_pk"))
        batch_op.drop_index(batch_op.f("ix_mark_omidb_mark_id"))
        batch_op.drop_index("ix_mark_current_kind")
        batch_op.drop_index("ix_mark_image_reader")

    op.drop_table("mark")
