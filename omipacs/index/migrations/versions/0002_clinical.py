"""clinical

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 17:13:32.243948
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "clinical_state",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_clinical_state")),
    )
    op.create_table(
        "clinical_tally",
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("has_2d", sa.Boolean(), nullable=False),
        sa.Column("has_3d", sa.Boolean(), nullable=False),
        sa.Column("is_marked", sa.Boolean(), nullable=False),
        sa.Column("clients", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "outcome", "has_2d", "has_3d", "is_marked", name=op.f("pk_clinical_tally")
        ),
    )
    op.create_table(
        "cohort",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("definition_sha256", sa.String(length=64), nullable=False),
        sa.Column("members_sha256", sa.String(length=64), nullable=False),
        sa.Column("client_count", sa.Integer(), nullable=False),
        sa.Column("study_count", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_cohort")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_cohort_name")),
    )
    op.create_table(
        "site",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_site")),
        sa.UniqueConstraint("code", name=op.f("uq_site_code")),
    )
    op.create_table(
        "client",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=True),
        sa.Column("linked", sa.Boolean(), nullable=True),
        sa.Column("site_pk", sa.Integer(), nullable=True),
        sa.Column("ethnicity", sa.String(length=8), nullable=False),
        sa.Column("imd_decile", sa.Integer(), nullable=True),
        sa.Column("high_risk", sa.Boolean(), nullable=True),
        sa.Column("mutation_genes", sa.JSON(), nullable=True),
        sa.Column("has_clinical", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=2), nullable=True),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("outcome_reason", sa.String(length=64), nullable=False),
        sa.Column("is_marked", sa.Boolean(), nullable=False),
        sa.Column("has_2d", sa.Boolean(), nullable=False),
        sa.Column("has_3d", sa.Boolean(), nullable=False),
        sa.Column("record_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("imported_at", sa.DateTime(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["patient_pk"],
            ["patient.pk"],
            name=op.f("fk_client_patient_pk_patient"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["site_pk"], ["site.pk"], name=op.f("fk_client_site_pk_site")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_client_client_id")),
        sa.UniqueConstraint("patient_pk", name=op.f("uq_client_patient_pk")),
    )
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_ethnicity"), ["ethnicity"], unique=False)
        batch_op.create_index(batch_op.f("ix_client_imd_decile"), ["imd_decile"], unique=False)
        batch_op.create_index(
            "ix_client_key", ["outcome", "has_2d", "has_3d", "is_marked"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_client_site_pk"), ["site_pk"], unique=False)

    op.create_table(
        "cohort_member",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("cohort_pk", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["cohort_pk"],
            ["cohort.pk"],
            name=op.f("fk_cohort_member_cohort_pk_cohort"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_cohort_member")),
        sa.UniqueConstraint(
            "cohort_pk", "study_instance_uid", name=op.f("uq_cohort_member_cohort_pk")
        ),
    )
    with op.batch_alter_table("cohort_member", schema=None) as batch_op:
        batch_op.create_index("ix_cohort_member_client", ["cohort_pk", "client_id"], unique=False)

    op.create_table(
        "density",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=1), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("measured_date", sa.Date(), nullable=True),
        sa.Column("vbd_pct", sa.Float(), nullable=True),
        sa.Column("fgv_cm3", sa.Float(), nullable=True),
        sa.Column("breast_vol_cm3", sa.Float(), nullable=True),
        sa.Column("density_grade", sa.String(length=8), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["client.pk"],
            name=op.f("fk_density_client_pk_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_density")),
    )
    with op.batch_alter_table("density", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_density_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_density_density_grade"), ["density_grade"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_density_sop_instance_uid"), ["sop_instance_uid"], unique=False
        )

    op.create_table(
        "episode",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("nbss_episode_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=True),
        sa.Column("opened_date", sa.Date(), nullable=True),
        sa.Column("closed_date", sa.Date(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=True),
        sa.Column("ic_diagnosis_date", sa.Date(), nullable=True),
        sa.Column("age_years", sa.Integer(), nullable=True),
        sa.Column("actual_opened_year", sa.Integer(), nullable=True),
        sa.Column("end_points", sa.JSON(), nullable=True),
        sa.Column("study_uids", sa.JSON(), nullable=True),
        sa.Column("earliest_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("outcome_undefined", sa.String(length=32), nullable=False),
        sa.Column("outcome_ref_episode_pk", sa.Integer(), nullable=True),
        sa.Column("is_post_op", sa.Boolean(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["client.pk"],
            name=op.f("fk_episode_client_pk_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outcome_ref_episode_pk"],
            ["episode.pk"],
            name=op.f("fk_episode_outcome_ref_episode_pk_episode"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_episode")),
        sa.UniqueConstraint("client_pk", "nbss_episode_id", name=op.f("uq_episode_client_pk")),
    )
    with op.batch_alter_table("episode", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_episode_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_episode_opened_date"), ["opened_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_episode_outcome"), ["outcome"], unique=False)
        batch_op.create_index(batch_op.f("ix_episode_type"), ["type"], unique=False)

    op.create_table(
        "image_feature",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=1), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("feature", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["client.pk"],
            name=op.f("fk_image_feature_client_pk_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_image_feature")),
    )
    with op.batch_alter_table("image_feature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_feature_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_image_feature_feature"), ["feature"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_image_feature_sop_instance_uid"), ["sop_instance_uid"], unique=False
        )

    op.create_table(
        "event",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("episode_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("date_performed", sa.Date(), nullable=True),
        sa.Column("dates", sa.JSON(), nullable=True),
        sa.Column("left_opinion", sa.String(length=2), nullable=True),
        sa.Column("right_opinion", sa.String(length=2), nullable=True),
        sa.Column("diagnostic_set_outcome", sa.String(length=16), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["episode_pk"],
            ["episode.pk"],
            name=op.f("fk_event_episode_pk_episode"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_event")),
        sa.UniqueConstraint("episode_pk", "kind", "seq", name=op.f("uq_event_episode_pk")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_date_performed"), ["date_performed"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_event_episode_pk"), ["episode_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_event_kind"), ["kind"], unique=False)

    op.create_table(
        "lesion",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("episode_pk", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=1), nullable=False),
        sa.Column("nbss_lesion_no", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=8), nullable=True),
        sa.Column("position", sa.String(length=8), nullable=True),
        sa.Column("cyst_aspirated", sa.Boolean(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["episode_pk"],
            ["episode.pk"],
            name=op.f("fk_lesion_episode_pk_episode"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_lesion")),
        sa.UniqueConstraint(
            "episode_pk", "side", "nbss_lesion_no", name=op.f("uq_lesion_episode_pk")
        ),
    )
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lesion_description"), ["description"], unique=False)
        batch_op.create_index(batch_op.f("ix_lesion_episode_pk"), ["episode_pk"], unique=False)

    op.create_table(
        "study_link",
        sa.Column("study_pk", sa.Integer(), nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("episode_pk", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("event_kinds", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["client.pk"],
            name=op.f("fk_study_link_client_pk_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["episode_pk"],
            ["episode.pk"],
            name=op.f("fk_study_link_episode_pk_episode"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["study.pk"],
            name=op.f("fk_study_link_study_pk_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("study_pk", name=op.f("pk_study_link")),
    )
    with op.batch_alter_table("study_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_link_client_pk"), ["client_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_study_link_episode_pk"), ["episode_pk"], unique=False)

    op.create_table(
        "lesion_finding",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("lesion_pk", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.Integer(), nullable=False),
        sa.Column("date_performed", sa.Date(), nullable=True),
        sa.Column("opinion", sa.String(length=8), nullable=True),
        sa.Column("mammo_opinion", sa.String(length=8), nullable=True),
        sa.Column("uss_opinion", sa.String(length=8), nullable=True),
        sa.Column("mammo_size_mm", sa.Float(), nullable=True),
        sa.Column("invasive_present", sa.Boolean(), nullable=True),
        sa.Column("invasive_components", sa.JSON(), nullable=True),
        sa.Column("invasive_type", sa.String(length=8), nullable=True),
        sa.Column("disease_grade", sa.String(length=8), nullable=True),
        sa.Column("insitu_components", sa.JSON(), nullable=True),
        sa.Column("dcis_grade", sa.String(length=8), nullable=True),
        sa.Column("malignancy_type", sa.String(length=1), nullable=True),
        sa.Column("her2_score", sa.String(length=8), nullable=True),
        sa.Column("her2_status", sa.String(length=8), nullable=True),
        sa.Column("er_score", sa.String(length=8), nullable=True),
        sa.Column("er_status", sa.String(length=8), nullable=True),
        sa.Column("pr_score", sa.String(length=8), nullable=True),
        sa.Column("pr_status", sa.String(length=8), nullable=True),
        sa.Column("tumour_size_mm", sa.Float(), nullable=True),
        sa.Column("ductal_size_mm", sa.Float(), nullable=True),
        sa.Column("nodes_positive", sa.Integer(), nullable=True),
        sa.Column("margins", sa.String(length=16), nullable=True),
        sa.Column("mutation_codes", sa.JSON(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_pk"],
            ["event.pk"],
            name=op.f("fk_lesion_finding_event_pk_event"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lesion_pk"],
            ["lesion.pk"],
            name=op.f("fk_lesion_finding_lesion_pk_lesion"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_lesion_finding")),
    )
    with op.batch_alter_table("lesion_finding", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lesion_finding_dcis_grade"), ["dcis_grade"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_lesion_finding_event_pk"), ["event_pk"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_lesion_finding_lesion_pk"), ["lesion_pk"], unique=False
        )
        batch_op.create_index(
            "ix_lesion_finding_pathology", ["disease_grade", "her2_status"], unique=False
        )

    op.create_table(
        "screen_read",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("event_pk", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=1), nullable=False),
        sa.Column("date_taken", sa.Date(), nullable=True),
        sa.Column("opinion", sa.String(length=8), nullable=True),
        sa.Column("equipment_make_model", sa.String(length=64), nullable=False),
        sa.Column("age_at_screening", sa.Integer(), nullable=True),
        sa.Column("readers", sa.JSON(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_pk"],
            ["event.pk"],
            name=op.f("fk_screen_read_event_pk_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_screen_read")),
    )
    with op.batch_alter_table("screen_read", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_screen_read_event_pk"), ["event_pk"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("screen_read", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_screen_read_event_pk"))

    op.drop_table("screen_read")
    with op.batch_alter_table("lesion_finding", schema=None) as batch_op:
        batch_op.drop_index("ix_lesion_finding_pathology")
        batch_op.drop_index(batch_op.f("ix_lesion_finding_lesion_pk"))
        batch_op.drop_index(batch_op.f("ix_lesion_finding_event_pk"))
        batch_op.drop_index(batch_op.f("ix_lesion_finding_dcis_grade"))

    op.drop_table("lesion_finding")
    with op.batch_alter_table("study_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_link_episode_pk"))
        batch_op.drop_index(batch_op.f("ix_study_link_client_pk"))

    op.drop_table("study_link")
    with op.batch_alter_table("lesion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lesion_episode_pk"))
        batch_op.drop_index(batch_op.f("ix_lesion_description"))

    op.drop_table("lesion")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_kind"))
        batch_op.drop_index(batch_op.f("ix_event_episode_pk"))
        batch_op.drop_index(batch_op.f("ix_event_date_performed"))

    op.drop_table("event")
    with op.batch_alter_table("image_feature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_feature_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_image_feature_feature"))
        batch_op.drop_index(batch_op.f("ix_image_feature_client_pk"))

    op.drop_table("image_feature")
    with op.batch_alter_table("episode", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_episode_type"))
        batch_op.drop_index(batch_op.f("ix_episode_outcome"))
        batch_op.drop_index(batch_op.f("ix_episode_opened_date"))
        batch_op.drop_index(batch_op.f("ix_episode_client_pk"))

    op.drop_table("episode")
    with op.batch_alter_table("density", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_density_sop_instance_uid"))
        batch_op.drop_index(batch_op.f("ix_density_density_grade"))
        batch_op.drop_index(batch_op.f("ix_density_client_pk"))

    op.drop_table("density")
    with op.batch_alter_table("cohort_member", schema=None) as batch_op:
        batch_op.drop_index("ix_cohort_member_client")

    op.drop_table("cohort_member")
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_site_pk"))
        batch_op.drop_index("ix_client_key")
        batch_op.drop_index(batch_op.f("ix_client_imd_decile"))
        batch_op.drop_index(batch_op.f("ix_client_ethnicity"))

    op.drop_table("client")
    op.drop_table("site")
    op.drop_table("cohort")
    op.drop_table("clinical_tally")
    op.drop_table("clinical_state")
