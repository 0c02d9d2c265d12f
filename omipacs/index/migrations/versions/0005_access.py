"""access: users, licences, tokens, access requests, audit

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 16:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NOW = sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("organisation", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_app_user")),
        sa.UniqueConstraint("email", name=op.f("uq_app_user_email")),
        sa.UniqueConstraint("oidc_subject", name=op.f("uq_app_user_oidc_subject")),
    )
    op.create_table(
        "access_request",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("applicant_pk", sa.Integer(), nullable=False),
        sa.Column("organisation", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("technical_summary", sa.Text(), nullable=False),
        sa.Column("lay_summary", sa.Text(), nullable=False),
        sa.Column("data_types", sa.String(length=128), nullable=False),
        sa.Column("patient_benefit", sa.Text(), nullable=False),
        sa.Column("cohort_pk", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["applicant_pk"], ["app_user.pk"], name=op.f("fk_access_request_applicant_pk_app_user")
        ),
        sa.ForeignKeyConstraint(
            ["cohort_pk"], ["cohort.pk"], name=op.f("fk_access_request_cohort_pk_cohort")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_access_request")),
    )
    op.create_index(
        op.f("ix_access_request_applicant_pk"), "access_request", ["applicant_pk"], unique=False
    )
    op.create_table(
        "licence",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=256), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("organisation", sa.String(length=128), nullable=False),
        sa.Column("cohort_pk", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.String(length=128), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("ends", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("request_pk", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(["cohort_pk"], ["cohort.pk"], name=op.f("fk_licence_cohort_pk_cohort")),
        sa.ForeignKeyConstraint(
            ["request_pk"], ["access_request.pk"], name=op.f("fk_licence_request_pk_access_request")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_licence")),
    )
    op.create_index(op.f("ix_licence_cohort_pk"), "licence", ["cohort_pk"], unique=False)
    op.create_table(
        "licence_member",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("licence_pk", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["licence_pk"], ["licence.pk"], name=op.f("fk_licence_member_licence_pk_licence"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["app_user.pk"], name=op.f("fk_licence_member_user_pk_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_licence_member")),
        sa.UniqueConstraint("licence_pk", "user_pk", name=op.f("uq_licence_member_licence_pk")),
    )
    op.create_index(op.f("ix_licence_member_user_pk"), "licence_member", ["user_pk"], unique=False)
    op.create_table(
        "api_token",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("user_pk", sa.Integer(), nullable=False),
        sa.Column("licence_pk", sa.Integer(), nullable=True),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["licence_pk"], ["licence.pk"], name=op.f("fk_api_token_licence_pk_licence")
        ),
        sa.ForeignKeyConstraint(["user_pk"], ["app_user.pk"], name=op.f("fk_api_token_user_pk_app_user")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_api_token")),
        sa.UniqueConstraint("sha256", name=op.f("uq_api_token_sha256")),
    )
    op.create_index(op.f("ix_api_token_user_pk"), "api_token", ["user_pk"], unique=False)
    op.create_table(
        "access_decision",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("request_pk", sa.Integer(), nullable=False),
        sa.Column("reviewer_pk", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("licence_pk", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["licence_pk"], ["licence.pk"], name=op.f("fk_access_decision_licence_pk_licence")
        ),
        sa.ForeignKeyConstraint(
            ["request_pk"], ["access_request.pk"],
            name=op.f("fk_access_decision_request_pk_access_request"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_pk"], ["app_user.pk"], name=op.f("fk_access_decision_reviewer_pk_app_user")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_access_decision")),
    )
    op.create_index(
        op.f("ix_access_decision_request_pk"), "access_decision", ["request_pk"], unique=False
    )
    op.create_table(
        "audit_event",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_email", sa.String(length=254), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("licence_pk", sa.Integer(), nullable=True),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("door", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=128), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_event")),
    )
    op.create_index(op.f("ix_audit_event_at"), "audit_event", ["at"], unique=False)
    op.create_index("ix_audit_event_user_at", "audit_event", ["user_email", "at"], unique=False)
    op.create_index("ix_audit_event_licence_at", "audit_event", ["licence_pk", "at"], unique=False)
    # The audit trail is append-only, whoever connects.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    for table in (
        "audit_event",
        "access_decision",
        "api_token",
        "licence_member",
        "licence",
        "access_request",
        "app_user",
    ):
        op.drop_table(table)
