"""Shared Pydantic bases: unknown fields are refused everywhere."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictInput(BaseModel):
    """Base of every request body: unknown fields refused, strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Output(BaseModel):
    """Base of every response body."""

    model_config = ConfigDict(frozen=True, from_attributes=True)
