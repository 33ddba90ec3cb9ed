"""four-eyes approvals for administrators' actions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "four_eyes_requests",
        sa.Column(
            "action",
            sa.Enum(
                "release",
                "recovery",
                "create_admin",
                name="foureyesaction",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("target_id", sa.Uuid(), nullable=False),
        sa.Column("reset_password", sa.Boolean(), nullable=False),
        sa.Column("reset_second_factor", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("requested_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "pending",
                "approved",
                "refused",
                "expired",
                name="foureyesoutcome",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_four_eyes_requests")),
    )
    with op.batch_alter_table("four_eyes_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_four_eyes_requests_target_id"), ["target_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_four_eyes_requests_requested_by"), ["requested_by"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_four_eyes_requests_outcome"), ["outcome"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("four_eyes_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_four_eyes_requests_outcome"))
        batch_op.drop_index(batch_op.f("ix_four_eyes_requests_requested_by"))
        batch_op.drop_index(batch_op.f("ix_four_eyes_requests_target_id"))
    op.drop_table("four_eyes_requests")
