"""The patient table. Every identity and contact field is sealed; see docs/CRYPTO.md
for what stays plaintext (ids, timestamps, status) and why."""

from __future__ import annotations

import enum
from datetime import date
from typing import Any

from sqlalchemy import Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin, TimestampMixin, str_enum
from hippocrate.db.sealed import DATE, JSON, TEXT, Sealed, SealedModel
from hippocrate.tags import Category, Subject
from hippocrate.vault import Padding


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    SHREDDED = "shredded"


class Patient(IdMixin, TimestampMixin, SealedModel, Base):
    __tablename__ = "patients"
    __sealed_owner__ = "id"
    __audit_subject__ = Subject.PATIENT_RECORD

    status: Mapped[PatientStatus] = mapped_column(
        str_enum(PatientStatus, length=16),
        default=PatientStatus.ACTIVE,
    )

    given_names_sealed: Mapped[bytes | None] = mapped_column("given_names", LargeBinary)
    family_name_sealed: Mapped[bytes | None] = mapped_column("family_name", LargeBinary)
    birth_date_sealed: Mapped[bytes | None] = mapped_column("birth_date", LargeBinary)
    sex_sealed: Mapped[bytes | None] = mapped_column("sex", LargeBinary)
    email_sealed: Mapped[bytes | None] = mapped_column("email", LargeBinary)
    phone_sealed: Mapped[bytes | None] = mapped_column("phone", LargeBinary)
    address_sealed: Mapped[bytes | None] = mapped_column("address", LargeBinary)
    nir_sealed: Mapped[bytes | None] = mapped_column("nir", LargeBinary)

    email_index: Mapped[int | None] = mapped_column(Integer, index=True)
    phone_index: Mapped[int | None] = mapped_column(Integer, index=True)
    nir_index: Mapped[int | None] = mapped_column(Integer, index=True)

    given_names = Sealed[str](
        "given_names_sealed", TEXT, category=Category.IDENTITY, pad=Padding(64)
    )
    family_name = Sealed[str](
        "family_name_sealed", TEXT, category=Category.IDENTITY, pad=Padding(64)
    )
    birth_date = Sealed[date](
        "birth_date_sealed", DATE, category=Category.IDENTITY, pad=Padding(16)
    )
    sex = Sealed[str]("sex_sealed", TEXT, category=Category.IDENTITY, pad=Padding(16))
    email = Sealed[str](
        "email_sealed",
        TEXT,
        blind_index="email_index",
        index_field="email",
        category=Category.CONTACT,
        pad=Padding(128),
    )
    phone = Sealed[str](
        "phone_sealed",
        TEXT,
        blind_index="phone_index",
        index_field="phone",
        category=Category.CONTACT,
        pad=Padding(32),
    )
    address = Sealed[dict[str, Any]](
        "address_sealed", JSON, category=Category.CONTACT, pad=Padding(256)
    )
    nir = Sealed[str](
        "nir_sealed",
        TEXT,
        blind_index="nir_index",
        index_field="nir",
        category=Category.NIR,
        pad=Padding(32),
    )
