"""the incident register: incidents, their timeline, scopes and notifications to the authority

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:10:00.000000

Ids, dates, statuses and the register's JSON documents (counts, categories, the DPO's
text): no name, address, NIR or health content of anyone (``breach/models.py``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reference", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "closed", name="incidentstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "origin",
            sa.Enum("guard", "dpo", "drill", name="incidentorigin", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_by_role", sa.String(length=24), nullable=False),
        sa.Column("opened_by", sa.Uuid(), nullable=True),
        sa.Column("awareness_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("assessment", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("reference", name=op.f("uq_incidents_reference")),
    )
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"], unique=False)
    op.create_table(
        "incident_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_role", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_changes_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_changes")),
        sa.UniqueConstraint("incident_id", "seq", name=op.f("uq_incident_changes_incident_id")),
    )
    op.create_index(
        op.f("ix_incident_changes_incident_id"), "incident_changes", ["incident_id"], unique=False
    )
    op.create_table(
        "incident_notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column(
            "phase",
            sa.Enum(
                "initial", "complementary", "withdrawal", name="phase", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by_role", sa.String(length=24), nullable=False),
        sa.Column("recorded_by", sa.Uuid(), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("receipt_reference", sa.String(length=120), nullable=True),
        sa.Column("delay_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_notifications_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_notifications")),
    )
    op.create_index(
        op.f("ix_incident_notifications_incident_id"),
        "incident_notifications",
        ["incident_id"],
        unique=False,
    )

    op.create_table(
        "incident_scopes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_by_role", sa.String(length=24), nullable=False),
        sa.Column("computed_by", sa.Uuid(), nullable=True),
        sa.Column("head_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_scopes_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_scopes")),
    )
    op.create_index(
        op.f("ix_incident_scopes_incident_id"), "incident_scopes", ["incident_id"], unique=False
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sending",
                "sent",
                "post",
                name="noticestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_id", sa.Uuid(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_notices_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["scope_id"], ["incident_scopes.id"], name=op.f("fk_notices_scope_id_incident_scopes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("incident_id", "patient_id", name=op.f("uq_notices_incident_id")),
    )
    op.create_index(op.f("ix_notices_incident_id"), "notices", ["incident_id"], unique=False)
    op.create_index(op.f("ix_notices_patient_id"), "notices", ["patient_id"], unique=False)
    op.create_index(op.f("ix_notices_status"), "notices", ["status"], unique=False)


def downgrade() -> None:
    for index in ("ix_notices_status", "ix_notices_patient_id", "ix_notices_incident_id"):
        op.drop_index(op.f(index), table_name="notices")
    op.drop_table("notices")
    op.drop_index(op.f("ix_incident_scopes_incident_id"), table_name="incident_scopes")
    op.drop_table("incident_scopes")
    op.drop_index(
        op.f("ix_incident_notifications_incident_id"), table_name="incident_notifications"
    )
    op.drop_table("incident_notifications")
    op.drop_index(op.f("ix_incident_changes_incident_id"), table_name="incident_changes")
    op.drop_table("incident_changes")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents")
    op.drop_table("incidents")
