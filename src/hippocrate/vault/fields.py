"""The sealed field format (version 1), documented in docs/CRYPTO.md.

::

    offset  size  content
    0       1     format version, 0x01
    1       4     data key version, unsigned big-endian
    5       12    nonce, random
    17      n+16  AES-256-GCM ciphertext of the n plaintext bytes, then the tag

The associated data is the 5-byte header followed by the field context (table,
column, row id, each length-prefixed), so a value copied into another row, column or
table, or relabelled with another key version, fails to open.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.exceptions import InvalidTag

from hippocrate.vault.errors import DecryptionError, UnknownKeyVersion
from hippocrate.vault.keys import DataKey

FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
_BODY = HEADER_BYTES + NONCE_BYTES


def _part(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


class FieldContext:
    """Where a sealed value lives: it only opens there.

    The associated data is computed once, when the context is made: callers that seal
    or open the same field repeatedly keep the context.
    """

    __slots__ = ("associated_data", "column", "row_id", "table")

    def __init__(self, table: str, column: str, row_id: uuid.UUID | str) -> None:
        self.table = table
        self.column = column
        self.row_id = row_id
        self.associated_data = _part(table) + _part(column) + _part(str(row_id))

    def __repr__(self) -> str:
        return f"FieldContext({self.table!r}, {self.column!r}, {str(self.row_id)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldContext) and self.associated_data == other.associated_data

    def __hash__(self) -> int:
        return hash(self.associated_data)


def seal(key: DataKey, plaintext: bytes, context: FieldContext) -> bytes:
    """Encrypt ``plaintext`` for ``context`` under ``key``; see the module docstring."""
    header = key.header
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + key.aead.encrypt(nonce, plaintext, header + context.associated_data)


def peek_key_version(blob: bytes) -> int:
    """The data key version a sealed value names; raises DecryptionError if malformed."""
    if len(blob) < OVERHEAD:
        raise DecryptionError("sealed value is truncated")
    fmt, version = _HEADER.unpack_from(blob)
    if fmt != FORMAT_V1:
        raise DecryptionError(f"sealed value has unknown format {fmt}")
    return int(version)


def open_sealed(key: DataKey, blob: bytes, context: FieldContext) -> bytes:
    """Decrypt a value made by :func:`seal` for the same context and key.

    Raises :class:`DecryptionError` (never returns partial data) if the value is
    truncated, of another format, made with another key version, moved from another
    row/column/table, or altered in any bit.
    """
    header = key.header
    if len(blob) < OVERHEAD or blob[:HEADER_BYTES] != header:
        # Slow path, only to word the error: truncated, unknown format, or other version.
        version = peek_key_version(blob)
        raise UnknownKeyVersion(f"sealed value needs data key version {version}, not {key.version}")
    try:
        return key.aead.decrypt(
            blob[HEADER_BYTES:_BODY], blob[_BODY:], header + context.associated_data
        )
    except InvalidTag:
        raise DecryptionError(
            f"sealed value does not open for {context.table}.{context.column}: "
            "moved from another row, column or patient, or altered"
        ) from None
