"""Canonical forms of personal identifiers, computed before sealing and blind indexing.

Pure functions, no I/O. Each ``normalise_*`` returns the one canonical string for
every writing a person would consider the same value (so the keyed blind index of
two such writings is equal), or raises an :class:`InvalidIdentifier` subclass whose
message can be shown to that person. No other exception escapes for a ``str`` input.
"""

from __future__ import annotations

from hippocrate.identifiers.email import normalise_email
from hippocrate.identifiers.errors import (
    InvalidEmail,
    InvalidIdentifier,
    InvalidNIR,
    InvalidPhone,
)
from hippocrate.identifiers.nir import (
    format_nir,
    mask_nir,
    nir_matches_identity,
    normalise_nir,
)
from hippocrate.identifiers.phone import format_phone, normalise_phone

__all__ = [
    "InvalidEmail",
    "InvalidIdentifier",
    "InvalidNIR",
    "InvalidPhone",
    "format_nir",
    "format_phone",
    "mask_nir",
    "nir_matches_identity",
    "normalise_email",
    "normalise_nir",
    "normalise_phone",
]
