"""shared guard state; break-glass by a CLI operator

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guard_containments",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("contained_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_guard_containments")),
    )
    op.create_table(
        "guard_reads",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "scope", "patient_id", name=op.f("pk_guard_reads")),
    )
    with op.batch_alter_table("guard_reads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guard_reads_at"), ["at"], unique=False)
    op.create_table(
        "guard_refusals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_refusals")),
    )
    with op.batch_alter_table("guard_refusals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guard_refusals_account_id"), ["account_id"], unique=False
        )
    with op.batch_alter_table("break_glass_grants", schema=None) as batch_op:
        batch_op.alter_column("admin_account_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.add_column(sa.Column("operator", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("break_glass_grants", schema=None) as batch_op:
        batch_op.drop_column("operator")
        batch_op.alter_column("admin_account_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("guard_refusals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_refusals_account_id"))
    op.drop_table("guard_refusals")
    with op.batch_alter_table("guard_reads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_reads_at"))
    op.drop_table("guard_reads")
    op.drop_table("guard_containments")
