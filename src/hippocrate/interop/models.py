"""Import progress: how far an import of one source file has committed.

Plaintext on purpose, and nothing personal: a digest of the source file's bytes and
counts. It lets an interrupted import resume after its last committed batch.
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
