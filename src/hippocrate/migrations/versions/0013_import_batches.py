"""import batches: each committed batch of an import, so that several importing
processes take disjoint batches and an interrupted import resumes after each of them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 15:20:00.000000

- ``import_batches``: one row per committed batch of a source file (its digest, the
  positions of its first and last record, counts). Nothing personal, like
  ``import_progress``: positions in the file and counts only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("source_digest", sa.String(length=64), nullable=False),
        sa.Column("first_row", sa.Integer(), nullable=False),
        sa.Column("last_row", sa.Integer(), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_digest", "first_row", name=op.f("pk_import_batches")),
    )


def downgrade() -> None:
    op.drop_table("import_batches")
