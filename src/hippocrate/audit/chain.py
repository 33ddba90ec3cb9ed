"""The hash chain: canonical encoding of an event and its link to the previous one.

``canonical`` is the reference: the bytes every stored link was computed over (compact
JSON from the standard library, ASCII only). ``fast_canonical`` produces the same bytes
with orjson, several times faster, for every value where orjson's output is provably
canonical's byte for byte, and falls back to the reference for the rest, so the chain
already stored verifies unchanged.

Where the two serialisers agree: strings of ASCII characters other than DEL (both
escape ``"``, ``\\`` and the control characters the same way), integers within 64 bits,
booleans, None, and lists, tuples and string-keyed dicts of those. Where they do not,
orjson is never used: a non-ASCII character (the reference escapes it as ``\\uXXXX``,
orjson writes UTF-8), DEL (the reference escapes it), a float (different exponent
formats; orjson writes NaN and infinities as ``null``), an integer beyond 64 bits or a
type orjson alone takes (UUID, datetime: the reference refuses them).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = bytes(32)
CONTEXT = b"hippocrate.audit.v1\x00"
FIELDS = (
    "seq",
    "at",
    "actor_account_id",
    "actor_role",
    "action",
    "patient_id",
    "resources",
    "categories",
    "purpose",
    "outcome",
    "request_id",
)


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _reference(values: Sequence[Any]) -> bytes:
    return json.dumps(list(values), separators=(",", ":"), ensure_ascii=True).encode("ascii")


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an event: its fields in a fixed order, as compact JSON."""
    return _reference([_plain(event[name]) for name in FIELDS])


def orjson_safe(value: Any) -> bool:
    """Whether ``value`` holds only what orjson writes as the reference does (apart from
    the characters of its strings, which ``unsafe_fast_canonical`` checks): strings,
    integers, booleans, None, and lists, tuples and string-keyed dicts of those."""
    if value is None or type(value) in (int, bool) or isinstance(value, str):
        return True
    if isinstance(value, (list, tuple)):
        return all(orjson_safe(item) for item in value)
    if isinstance(value, dict):
        return all(type(key) is str and orjson_safe(item) for key, item in value.items())
    return False


def unsafe_fast_canonical(values: Sequence[Any]) -> bytes | None:
    """orjson's bytes for the plain fields ``values`` (in ``FIELDS`` order), or None
    where they are not the reference's (a character beyond ASCII, DEL, an integer
    beyond 64 bits, a type orjson refuses).

    Unsafe: it does not look for floats, whose text orjson writes differently; the
    caller must know there are none (``orjson_safe``). The verifier's hot path knows it
    from the columns' types, and checks the JSON columns' items itself."""
    try:
        out = orjson.dumps(values)
    except orjson.JSONEncodeError:
        return None
    return out if out.isascii() and b"\x7f" not in out else None


def fast_canonical(event: Mapping[str, Any]) -> bytes:
    """``canonical(event)``, byte for byte, by orjson wherever it can be."""
    values = [_plain(event[name]) for name in FIELDS]
    if orjson_safe(values):
        out = unsafe_fast_canonical(values)
        if out is not None:
            return out
    return _reference(values)


def link(prev_hash: bytes, event: Mapping[str, Any]) -> bytes:
    """The hash of ``event`` chained after ``prev_hash``."""
    return hashlib.sha256(CONTEXT + prev_hash + canonical(event)).digest()
