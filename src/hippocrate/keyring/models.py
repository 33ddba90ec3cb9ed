"""Tables of the keyring. Only wrapped keys are stored; root keys live in the provider."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, str_enum, utcnow


class KeyState(enum.StrEnum):
    ACTIVE = "active"  # seals new values
    RETIRED = "retired"  # opens old values while a data key rotation runs
    DESTROYED = "destroyed"  # wrapped bytes erased: the owner's data is gone


class DataKeyRecord(Base):
    """One version of one owner's data key, wrapped under a root key version."""

    __tablename__ = "data_keys"

    owner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    state: Mapped[KeyState] = mapped_column(str_enum(KeyState, length=16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    destroyed_at: Mapped[datetime | None]


class RootRotation(Base):
    """A root key rotation: recorded before it starts so that a rerun resumes it."""

    __tablename__ = "root_rotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_version: Mapped[int] = mapped_column(Integer, unique=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    rewrapped: Mapped[int] = mapped_column(Integer, default=0)
