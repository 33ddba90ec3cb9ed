"""Opaque handles for unwrapped data keys.

A :class:`DataKey` holds a 256-bit per-patient key ready for use. It never prints its
material, refuses pickling, and exposes no bytes: callers pass it back to the vault.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DATA_KEY_BYTES = 32


class DataKey:
    """One version of one owner's data key, unwrapped (in memory only)."""

    __slots__ = ("_aead", "header", "owner", "version")

    def __init__(self, owner: uuid.UUID, version: int, material: bytes) -> None:
        if len(material) != DATA_KEY_BYTES:
            raise ValueError("a data key is 32 bytes")
        self.owner = owner
        self.version = version
        self._aead = AESGCM(material)
        # The sealed-format header of this key version (format 1, version), made once.
        self.header = struct.pack(">BI", 1, version)

    @property
    def aead(self) -> AESGCM:
        return self._aead

    def __repr__(self) -> str:
        return f"DataKey(owner={self.owner}, version={self.version}, material=<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("data keys cannot be pickled")


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key as stored: encrypted under a root key version, bound to its owner.

    ``blob`` is opaque ciphertext; it is safe to store in the database.
    """

    owner: uuid.UUID
    version: int
    root_version: int
    blob: bytes

    def __repr__(self) -> str:
        return (
            f"WrappedKey(owner={self.owner}, version={self.version}, "
            f"root_version={self.root_version})"
        )


def wrap_binding(owner: uuid.UUID, version: int) -> bytes:
    """Associated data for a wrap: the owner id and data key version.

    A wrapped key copied to another owner or version does not unwrap.
    """
    return b"owner=" + owner.bytes + b";version=" + version.to_bytes(4, "big")
