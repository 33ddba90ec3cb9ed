"""less plaintext health metadata: a consultation's specialty and exact times sealed
once it leaves the queue, messages' send times and files' exact sizes sealed, sequence
numbers instead of dates to order lists, care relationships in whole days

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:35:00.000000

Moving the existing plaintext into sealed values needs the patients' keys, which a
migration does not hold: that is ``hippocrate keys reseal``, resumable, run after this
upgrade. Here only what needs no key: the new columns, the sequence numbers (from the
order of the plaintext times, before the command coarsens them), and the care
relationships' days.
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(table: str, group: str, column: str, *, start: int) -> None:
    """Number the rows of ``table`` within each ``group``, in the order of their times."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, {group}, created_at FROM {table}")  # noqa: S608 (fixed names)
    ).all()
    by_group: dict[object, list[tuple[datetime, str, object]]] = defaultdict(list)
    for row_id, key, created_at in rows:
        by_group[key].append((_utc(created_at), str(row_id), row_id))
    update = sa.text(f"UPDATE {table} SET {column} = :n WHERE id = :id")  # noqa: S608
    for members in by_group.values():
        for n, (_, _, row_id) in enumerate(sorted(members), start=start):
            bind.execute(update, {"n": n, "id": row_id})


def _whole_days() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, started_at, ends_at FROM care_relationships")).all()
    update = sa.text(
        "UPDATE care_relationships SET started_at = :started, ends_at = :ends WHERE id = :id"
    ).bindparams(
        sa.bindparam("started", type_=sa.DateTime(timezone=True)),
        sa.bindparam("ends", type_=sa.DateTime(timezone=True)),
    )
    for row_id, started_at, ends_at in rows:
        start = _utc(started_at)
        floor = datetime(start.year, start.month, start.day, tzinfo=UTC)
        ceil = None
        if ends_at is not None:
            end = _utc(ends_at)
            ceil = datetime(end.year, end.month, end.day, tzinfo=UTC)
            if ceil != end:
                ceil += timedelta(days=1)
        bind.execute(update, {"started": floor, "ends": ceil, "id": row_id})


def upgrade() -> None:
    # Only columns added (nullable, or with a default): on SQLite that is an ALTER TABLE
    # each, never a copy of the table, which the foreign keys pointing at it refuse. A
    # specialty that leaves plaintext becomes empty, not NULL, for the same reason.
    for table, column in (
        ("consultations", sa.Column("number", sa.Integer(), nullable=False, server_default="0")),
        ("consultations", sa.Column("timeline", sa.LargeBinary(), nullable=True)),
        ("messages", sa.Column("number", sa.Integer(), nullable=False, server_default="0")),
        ("messages", sa.Column("sent_at", sa.LargeBinary(), nullable=True)),
        ("attachments", sa.Column("position", sa.Integer(), nullable=False, server_default="0")),
        ("attachments", sa.Column("exact_size", sa.LargeBinary(), nullable=True)),
    ):
        op.add_column(table, column)
    _number("consultations", "patient_id", "number", start=1)
    _number("messages", "consultation_id", "number", start=1)
    _number("attachments", "message_id", "position", start=0)
    _whole_days()


def downgrade() -> None:
    # What was sealed stays sealed: a specialty moved into a timeline does not come
    # back to plaintext without the keys (it stays empty). ALTER TABLE … DROP COLUMN
    # (SQLite 3.35 and later): no copy of the table.
    for table, column in (
        ("attachments", "exact_size"),
        ("attachments", "position"),
        ("messages", "sent_at"),
        ("messages", "number"),
        ("consultations", "timeline"),
        ("consultations", "number"),
    ):
        op.drop_column(table, column)
