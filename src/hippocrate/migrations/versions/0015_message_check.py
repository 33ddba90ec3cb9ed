"""the public check of a received message: a keyed digest of each email's code

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 15:30:00.000000

``outbound_emails.code_digest``: nullable, indexed (not unique: codes are drawn unlike
every recorded one, but two processes drawing at once are not serialised, and a clash
of 40-bit codes must not fail a unit of work). The digest is keyed by the key provider,
which a migration does not hold: rows recorded before this revision keep a null digest,
and the public check answers for them as for a code never sent (docs/NOTIFICATIONS.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding a column and an index only: no copy of outbound_emails.
    op.add_column("outbound_emails", sa.Column("code_digest", sa.LargeBinary(length=32)))
    op.create_index(
        op.f("ix_outbound_emails_code_digest"), "outbound_emails", ["code_digest"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbound_emails_code_digest"), table_name="outbound_emails")
    # ALTER TABLE … DROP COLUMN (SQLite 3.35 and later): no copy of the table.
    op.drop_column("outbound_emails", "code_digest")
