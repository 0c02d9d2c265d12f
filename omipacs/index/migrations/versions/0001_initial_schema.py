"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 16:32:10.199343
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "archive_setting",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_archive_setting")),
    )
    op.create_table(
        "patient",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("patient_name", sa.String(length=324), nullable=False),
        sa.Column("patient_name_search", sa.String(length=324), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_patient")),
        sa.UniqueConstraint("patient_id", name=op.f("uq_patient_patient_id")),
    )
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_patient_name_search"), ["patient_name_search"], unique=False
        )

    op.create_table(
        "study",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("study_time", sa.String(length=16), nullable=False),
        sa.Column("accession_number", sa.String(length=64), nullable=False),
        sa.Column("study_id", sa.String(length=64), nullable=False),
        sa.Column("study_description", sa.String(length=256), nullable=False),
        sa.Column("referring_physician_name", sa.String(length=324), nullable=False),
        sa.Column("patient_age", sa.String(length=8), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patient.pk"], name=op.f("fk_study_patient_pk_patient")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_study")),
        sa.UniqueConstraint("study_instance_uid", name=op.f("uq_study_study_instance_uid")),
    )
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_study_accession_number"), ["accession_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_study_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_patient_pk"), ["patient_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_study_date"), ["study_date"], unique=False)

    op.create_table(
        "series",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.String(length=256), nullable=False),
        sa.Column("series_date", sa.Date(), nullable=True),
        sa.Column("body_part_examined", sa.String(length=16), nullable=False),
        sa.Column("presentation_intent_type", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["study_pk"], ["study.pk"], name=op.f("fk_series_study_pk_study")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_series")),
        sa.UniqueConstraint("series_instance_uid", name=op.f("uq_series_series_instance_uid")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_series_modality"), ["modality"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_series_presentation_intent_type"),
            ["presentation_intent_type"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_series_study_pk"), ["study_pk"], unique=False)

    op.create_table(
        "instance",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_pk", sa.Integer(), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("columns", sa.Integer(), nullable=True),
        sa.Column("number_of_frames", sa.Integer(), nullable=True),
        sa.Column("bits_allocated", sa.Integer(), nullable=True),
        sa.Column("bits_stored", sa.Integer(), nullable=True),
        sa.Column("photometric_interpretation", sa.String(length=16), nullable=False),
        sa.Column("laterality", sa.String(length=2), nullable=False),
        sa.Column("view_position", sa.String(length=16), nullable=False),
        sa.Column("view_code", sa.String(length=16), nullable=False),
        sa.Column("view_code_meaning", sa.String(length=64), nullable=False),
        sa.Column("view_modifier_codes", sa.String(length=128), nullable=False),
        sa.Column("presentation_intent_type", sa.String(length=32), nullable=False),
        sa.Column("image_type", sa.String(length=128), nullable=False),
        sa.Column("manufacturer", sa.String(length=64), nullable=False),
        sa.Column("manufacturer_model_name", sa.String(length=64), nullable=False),
        sa.Column("software_versions", sa.String(length=128), nullable=False),
        sa.Column("body_part_thickness", sa.Float(), nullable=True),
        sa.Column("compression_force", sa.Float(), nullable=True),
        sa.Column("kvp", sa.Float(), nullable=True),
        sa.Column("organ_dose", sa.Float(), nullable=True),
        sa.Column("breast_implant_present", sa.String(length=8), nullable=False),
        sa.Column("imager_pixel_spacing", sa.String(length=64), nullable=False),
        sa.Column("voi_lut_function", sa.String(length=16), nullable=False),
        sa.Column("burned_in_annotation", sa.String(length=8), nullable=False),
        sa.Column("patient_identity_removed", sa.String(length=8), nullable=False),
        sa.Column("frame_of_reference_uid", sa.String(length=64), nullable=False),
        sa.Column("content_date", sa.Date(), nullable=True),
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("dataset_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column("source_ae_title", sa.String(length=16), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_pk"], ["series.pk"], name=op.f("fk_instance_series_pk_series")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_instance")),
        sa.UniqueConstraint("blob_key", name=op.f("uq_instance_blob_key")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_instance_sop_instance_uid")),
    )
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instance_laterality"), ["laterality"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instance_manufacturer"), ["manufacturer"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instance_manufacturer_model_name"),
            ["manufacturer_model_name"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_instance_number_of_frames"), ["number_of_frames"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instance_presentation_intent_type"),
            ["presentation_intent_type"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_instance_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_instance_series_pk"), ["series_pk"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instance_sop_class_uid"), ["sop_class_uid"], unique=False
        )
        batch_op.create_index(
            "ix_instance_view", ["laterality", "view_position", "sop_class_uid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_instance_view_code"), ["view_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_instance_view_position"), ["view_position"], unique=False
        )

    op.create_table(
        "instance_metadata",
        sa.Column("instance_pk", sa.Integer(), nullable=False),
        sa.Column("dicom_json", sa.LargeBinary(), nullable=False),
        sa.Column("frames", sa.JSON(), nullable=True),
        sa.Column("pixel", sa.JSON(), nullable=True),
        sa.Column("header_length", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_pk"],
            ["instance.pk"],
            name=op.f("fk_instance_metadata_instance_pk_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_pk", name=op.f("pk_instance_metadata")),
    )


def downgrade() -> None:

    op.drop_table("instance_metadata")
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instance_view_position"))
        batch_op.drop_index(batch_op.f("ix_instance_view_code"))
        batch_op.drop_index("ix_instance_view")
        batch_op.drop_index(batch_op.f("ix_instance_sop_class_uid"))
        batch_op.drop_index(batch_op.f("ix_instance_series_pk"))
        batch_op.drop_index(batch_op.f("ix_instance_received_at"))
        batch_op.drop_index(batch_op.f("ix_instance_presentation_intent_type"))
        batch_op.drop_index(batch_op.f("ix_instance_number_of_frames"))
        batch_op.drop_index(batch_op.f("ix_instance_manufacturer_model_name"))
        batch_op.drop_index(batch_op.f("ix_instance_manufacturer"))
        batch_op.drop_index(batch_op.f("ix_instance_laterality"))

    op.drop_table("instance")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_series_study_pk"))
        batch_op.drop_index(batch_op.f("ix_series_presentation_intent_type"))
        batch_op.drop_index(batch_op.f("ix_series_modality"))

    op.drop_table("series")
    with op.batch_alter_table("study", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_study_date"))
        batch_op.drop_index(batch_op.f("ix_study_patient_pk"))
        batch_op.drop_index(batch_op.f("ix_study_created_at"))
        batch_op.drop_index(batch_op.f("ix_study_accession_number"))

    op.drop_table("study")
    with op.batch_alter_table("patient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_patient_name_search"))

    op.drop_table("patient")
    op.drop_table("archive_setting")
