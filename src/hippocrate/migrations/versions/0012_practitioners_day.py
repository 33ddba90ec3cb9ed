"""the practitioner's day: read positions per consultation, sealed hand-backs, and a
consultation handed back to the queue may be taken again by another practitioner

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 12:40:00.000000

- ``consultations.patient_read`` and ``consultations.practitioner_read``: the number of
  the last message each side has read (sequence numbers, no time), for unread flags;
- ``consultations.handbacks``: sealed, the hand-backs of a consultation (when, by whom,
  why), under the patient's key;
- ``care_relationships.consultation_id`` is no longer unique: a consultation handed
  back and taken again has one care relationship per practitioner who took it (the
  ended one stays, so the patient still sees who read their record). The table is a
  leaf (nothing points at it), so SQLite's copy of it is refused by no foreign key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Adding columns only: no copy of consultations (which other tables point at).
    op.add_column(
        "consultations",
        sa.Column("patient_read", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "consultations",
        sa.Column("practitioner_read", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("consultations", sa.Column("handbacks", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("care_relationships", schema=None) as batch_op:
        batch_op.drop_constraint("uq_care_relationships_consultation_id", type_="unique")
        batch_op.create_index(
            batch_op.f("ix_care_relationships_consultation_id"), ["consultation_id"], unique=False
        )


def downgrade() -> None:
    # A consultation taken twice keeps only its latest care relationship.
    op.execute(
        "DELETE FROM care_relationships WHERE ends_at IS NOT NULL AND consultation_id IN "
        "(SELECT consultation_id FROM care_relationships GROUP BY consultation_id "
        "HAVING COUNT(*) > 1)"
    )
    with op.batch_alter_table("care_relationships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_care_relationships_consultation_id"))
        batch_op.create_unique_constraint(
            "uq_care_relationships_consultation_id", ["consultation_id"]
        )
    # ALTER TABLE … DROP COLUMN (SQLite 3.35 and later): no copy of the table.
    for column in ("handbacks", "practitioner_read", "patient_read"):
        op.drop_column("consultations", column)
