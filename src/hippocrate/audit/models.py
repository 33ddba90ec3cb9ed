"""The audit trail's tables. Ids and categories only: never plaintext personal data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.audit.chain import FIELDS
from hippocrate.db.base import Base


class AuditEvent(Base):
    """One access (or refused attempt) to protected data, or an authentication event.

    ``hash`` = SHA-256(``prev_hash`` ‖ canonical encoding of every other column), so
    changing, removing, inserting or reordering a row breaks the chain.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[datetime]
    actor_account_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_role: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(80))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    resources: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    def as_dict(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.key) for c in self.__table__.columns}


class AuditPending(Base):
    """An event committed with its unit of work and not yet chained: the chainer
    (``audit/chainer.py``) moves it into ``audit_events`` at the next position of the
    chain and deletes it here, in one transaction. Requests insert here without any
    lock; the table holds what the chainer has not reached yet (its lag), and readers
    of the trail (a patient's history, breach scopes, the guard's alerts) read it too.
    ``id`` orders the arrivals; the chain's order is the chainer's."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime]
    actor_account_id: Mapped[uuid.UUID | None]
    actor_role: Mapped[str] = mapped_column(String(24))
    action: Mapped[str] = mapped_column(String(80))
    patient_id: Mapped[uuid.UUID | None]
    resources: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))


#: An event as readers of the trail see it, chained or not yet.
TrailEvent = AuditEvent | AuditPending

#: The columns an event has whether chained or not, in ``chain.FIELDS`` order less ``seq``.
EVENT_COLUMNS = tuple(name for name in FIELDS if name != "seq")


class AuditHead(Base):
    """The chain's head, one row: the chainer locks it, so the chain has one order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
