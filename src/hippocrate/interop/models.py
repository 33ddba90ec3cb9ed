"""Import progress: how far an import of one source file has committed.

Plaintext on purpose, and nothing personal: a digest of the source file's bytes and
counts. It lets an interrupted import resume after its committed batches.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, utcnow


class ImportProgress(Base):
    __tablename__ = "import_progress"

    source_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    rows_done: Mapped[int] = mapped_column(Integer)
    imported: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportBatch(Base):
    """One committed batch of an import: records ``first_row`` to ``last_row`` (their
    positions among the file's records, from 1). Written in the batch's own unit of
    work, so a batch is recorded exactly when its patients are in; the batches of an
    import taken by several processes are disjoint, and a resumed import skips every
    recorded one."""

    __tablename__ = "import_batches"

    source_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_row: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_row: Mapped[int] = mapped_column(Integer)
    imported: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    committed_at: Mapped[datetime] = mapped_column(default=utcnow)
