"""issued documents: the code and content digests that verify a signed document

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("attachment_id", sa.Uuid(), nullable=False),
        sa.Column("code_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("content_digest", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["attachments.id"],
            name=op.f("fk_issued_documents_attachment_id_attachments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_documents")),
        sa.UniqueConstraint("attachment_id", name=op.f("uq_issued_documents_attachment_id")),
        sa.UniqueConstraint("code_digest", name=op.f("uq_issued_documents_code_digest")),
        sa.UniqueConstraint("content_digest", name=op.f("uq_issued_documents_content_digest")),
    )


def downgrade() -> None:
    op.drop_table("issued_documents")
