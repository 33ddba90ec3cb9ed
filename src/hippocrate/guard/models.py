"""The guard's tables: honeytoken markers, and the shared state of the embedded default.

Honeytoken markers: keyed digests of the honeytoken patients' ids.

Without the provider's index key nobody can tell which patients they mark: the
patients themselves are ordinary rows, sealed like every other.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, utcnow


class HoneytokenMarker(Base):
    __tablename__ = "guard_markers"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Containment(Base):
    """A contained principal, as every process of the deployment sees it (the embedded
    default's shared state; with Redis configured, Redis holds it instead). No foreign
    key: a CLI operator is a principal without an account."""

    __tablename__ = "guard_containments"

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    contained_at: Mapped[datetime] = mapped_column(default=utcnow)


class WindowRead(Base):
    """The last time a principal read a patient, per window (``scope``): the breadth
    rule counts the distinct patients read within the window. What it reveals to a
    copy of the database (who read whom, lately) the audit trail already says."""

    __tablename__ = "guard_reads"

    account_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[float] = mapped_column(Float, index=True)


class WindowRefusal(Base):
    """One refused or not-found access by a principal, for the enumeration rule."""

    __tablename__ = "guard_refusals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[uuid.UUID] = mapped_column(index=True)
    at: Mapped[float] = mapped_column(Float)
