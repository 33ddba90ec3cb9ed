"""Honeytoken markers: keyed digests of the honeytoken patients' ids.

Without the provider's index key nobody can tell which patients they mark: the
patients themselves are ordinary rows, sealed like every other.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, utcnow


class HoneytokenMarker(Base):
    __tablename__ = "guard_markers"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
