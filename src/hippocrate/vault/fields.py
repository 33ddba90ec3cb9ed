"""The sealed field formats (versions 1 and 2), documented in docs/CRYPTO.md.

::

    offset  size  content
    0       1     format version, 0x01 or 0x02
    1       4     data key version, unsigned big-endian
    5       12    nonce, random
    17      m+16  AES-256-GCM ciphertext of the m plaintext bytes, then the tag

Version 1 encrypts the n plaintext bytes as they are (m = n), so the length of a value
says the length of the plaintext. Version 2 pads them first, inside the AEAD, to the
bucket its field declares (:class:`Padding`): ISO/IEC 7816-4 padding, one ``0x80``
byte then zeros up to the bucket size m > n, removed again on opening. Sealing writes
version 2; opening accepts both.

The associated data is the 5-byte header followed by the field context (table,
column, row id, each length-prefixed), so a value copied into another row, column or
table, relabelled with another key version or with another format, fails to open.
"""

from __future__ import annotations

import os
import struct
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from hippocrate.vault.errors import DecryptionError, UnknownKeyVersion
from hippocrate.vault.keys import DataKey

FORMAT_V1 = 1
FORMAT_V2 = 2
FORMATS = (FORMAT_V1, FORMAT_V2)
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">BI")
HEADER_BYTES = _HEADER.size
#: Bytes a version 1 value adds to its plaintext (version 2 adds these and the padding).
OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES
_BODY = HEADER_BYTES + NONCE_BYTES
_PAD_MARK = 0x80


@dataclass(frozen=True, slots=True)
class Padding:
    """The buckets a field's plaintexts are padded to before sealing (format 2).

    ``Padding(64)``: multiples of 64 bytes. ``Padding(256, doubling_until=4096)``:
    256, 512, 1,024, 2,048, 4,096 bytes, then multiples of 4,096. A bucket always holds
    at least one padding byte, so a plaintext of exactly 64 bytes takes 128.

    Guaranteed: two plaintexts of one field whose padded lengths fall in the same
    bucket seal to values of the same length. Not guaranteed: anything about values
    in different buckets; a length still says which bucket the plaintext fell in.
    """

    step: int = 16
    doubling_until: int = 0

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError("a padding step is at least one byte")
        if self.doubling_until and (
            self.doubling_until < self.step or self.doubling_until % self.step
        ):
            raise ValueError("doubling_until must be a multiple of the step")

    def bucket(self, length: int) -> int:
        """The padded size of a plaintext of ``length`` bytes (always > ``length``)."""
        if not self.doubling_until:
            return (length // self.step + 1) * self.step
        needed = length + 1
        if needed <= self.doubling_until:
            size = self.step
            while size < needed:
                size *= 2
            return min(size, self.doubling_until)
        return -(-needed // self.doubling_until) * self.doubling_until


#: The buckets of a field that declares none: 16-byte steps.
DEFAULT_PADDING = Padding()


def pad(plaintext: bytes, padding: Padding) -> bytes:
    """``plaintext`` ‖ 0x80 ‖ zeros, to ``padding.bucket(len(plaintext))`` bytes."""
    return (plaintext + b"\x80").ljust(padding.bucket(len(plaintext)), b"\x00")


def unpad(padded: bytes) -> bytes:
    """The plaintext of :func:`pad`; raises ``DecryptionError`` if malformed."""
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != _PAD_MARK:
        raise DecryptionError("sealed value has malformed padding")
    return stripped[:-1]


def _part(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


_PREFIXES: dict[tuple[str, str], bytes] = {}


def _prefix(table: str, column: str) -> bytes:
    """``_part(table) + _part(column)``, kept: tables and columns are few, rows many."""
    found = _PREFIXES.get((table, column))
    if found is None:
        found = _part(table) + _part(column)
        if len(_PREFIXES) < 4096:  # a backstop only: the schema has a few dozen columns
            _PREFIXES[(table, column)] = found
    return found


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
        self.associated_data = _prefix(table, column) + _part(str(row_id))

    def __repr__(self) -> str:
        return f"FieldContext({self.table!r}, {self.column!r}, {str(self.row_id)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldContext) and self.associated_data == other.associated_data

    def __hash__(self) -> int:
        return hash(self.associated_data)


def seal(
    key: DataKey, plaintext: bytes, context: FieldContext, padding: Padding = DEFAULT_PADDING
) -> bytes:
    """Encrypt ``plaintext`` for ``context`` under ``key`` in format 2, padded to the
    bucket ``padding`` gives its length; see the module docstring."""
    header = _V2_HEADERS.get(key.version) or _v2_header(key.version)
    padded = (plaintext + b"\x80").ljust(padding.bucket(len(plaintext)), b"\x00")
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + key.aead.encrypt(nonce, padded, header + context.associated_data)


_V2_HEADERS: dict[int, bytes] = {}


def _v2_header(version: int) -> bytes:
    header = _HEADER.pack(FORMAT_V2, version)
    if len(_V2_HEADERS) < 1024:  # key versions are few; the bound is only a backstop
        _V2_HEADERS[version] = header
    return header


def seal_v1(key: DataKey, plaintext: bytes, context: FieldContext) -> bytes:
    """Encrypt in format 1, unpadded: only for the known-answer test, the benchmark
    and the tests of the migration from it. Nothing in the platform seals with it."""
    header = key.header
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + key.aead.encrypt(nonce, plaintext, header + context.associated_data)


def peek_format(blob: bytes) -> int:
    """The format version of a sealed value; raises DecryptionError if malformed."""
    if len(blob) < OVERHEAD:
        raise DecryptionError("sealed value is truncated")
    if blob[0] not in FORMATS:
        raise DecryptionError(f"sealed value has unknown format {blob[0]}")
    return blob[0]


def peek_key_version(blob: bytes) -> int:
    """The data key version a sealed value names; raises DecryptionError if malformed."""
    peek_format(blob)
    _, version = _HEADER.unpack_from(blob)
    return int(version)


def open_sealed(key: DataKey, blob: bytes, context: FieldContext) -> bytes:
    """Decrypt a value made by :func:`seal` (format 2, unpadded again) or by an
    earlier version (format 1) for the same context and key.

    Raises :class:`DecryptionError` (never returns partial data) if the value is
    truncated, of an unknown format, made with another key version, moved from another
    row/column/table, or altered in any bit.
    """
    header = blob[:HEADER_BYTES]
    if len(blob) < OVERHEAD or (
        header != key.header and header != (_V2_HEADERS.get(key.version) or _v2_header(key.version))
    ):
        # Slow path, only to word the error: truncated, unknown format, or other version.
        version = peek_key_version(blob)
        raise UnknownKeyVersion(f"sealed value needs data key version {version}, not {key.version}")
    try:
        opened = key.aead.decrypt(
            blob[HEADER_BYTES:_BODY], blob[_BODY:], header + context.associated_data
        )
    except InvalidTag:
        raise DecryptionError(
            f"sealed value does not open for {context.table}.{context.column}: "
            "moved from another row, column or patient, or altered"
        ) from None
    if header[0] == FORMAT_V1:
        return opened
    stripped = opened.rstrip(b"\x00")  # unpad(), inline: this is every read's path
    if not stripped or stripped[-1] != _PAD_MARK:
        raise DecryptionError("sealed value has malformed padding")
    return stripped[:-1]
