"""Pydantic shapes of the patients domain (input validated and normalised here)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hippocrate.errors import InvalidField
from hippocrate.i18n import _n
from hippocrate.identifiers import mask_nir, normalise_email, normalise_nir, normalise_phone

Sex = Literal["F", "M", "X"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Address(_Strict):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = Field(default=None, max_length=200)
    postal_code: str = Field(min_length=1, max_length=16)
    city: str = Field(min_length=1, max_length=100)
    country: str = Field(default="FR", pattern=r"^[A-Z]{2}$")


class PatientCreate(_Strict):
    given_names: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    birth_date: date
    sex: Sex
    email: str = Field(max_length=254)
    phone: str = Field(max_length=32)
    address: Address
    nir: str | None = Field(default=None, max_length=32)

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: date) -> date:
        if value > datetime.now(UTC).date():
            raise InvalidField(_n("birth date is in the future"))
        if value.year < 1900:
            raise InvalidField(_n("birth date is before 1900"))
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalise_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return normalise_phone(value)

    @field_validator("nir")
    @classmethod
    def _nir(cls, value: str | None) -> str | None:
        return normalise_nir(value) if value else None


class PatientRead(BaseModel):
    """A patient as shown to someone allowed to see the record; NIR masked."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    given_names: str
    family_name: str
    birth_date: date
    sex: Sex
    email: str
    phone: str
    address: Address
    nir_masked: str | None
    created_at: datetime

    @staticmethod
    def mask(nir: str | None) -> str | None:
        return mask_nir(nir) if nir else None
