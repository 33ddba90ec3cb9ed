"""second-factor failures per account, and the lock they lead to

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mfa_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("mfa_locked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("mfa_locked_at")
        batch_op.drop_column("mfa_failures")
