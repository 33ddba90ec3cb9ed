"""the chainer: events committed with their unit of work wait in audit_pending

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 21:15:00.000000

Requests no longer append to the chain under the head's lock: they insert their events
into ``audit_pending`` and the chainer links them into ``audit_events`` (docs/AUDIT.md,
"The chainer"). A new table only: the chain already stored is unchanged.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_account_id", sa.Uuid(), nullable=True),
        sa.Column("actor_role", sa.String(length=24), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(length=80), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )


def downgrade() -> None:
    # Events still pending would be lost: chain them first ('hippocrate audit chain').
    op.drop_table("audit_pending")
