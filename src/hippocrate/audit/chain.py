"""The hash chain: canonical encoding of an event and its link to the previous one."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)
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


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes hashed for an event: its fields in a fixed order, as compact JSON."""
    return json.dumps(
        [_plain(event[name]) for name in FIELDS], separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def link(prev_hash: bytes, event: Mapping[str, Any]) -> bytes:
    """The hash of ``event`` chained after ``prev_hash``."""
    return hashlib.sha256(b"hippocrate.audit.v1\x00" + prev_hash + canonical(event)).digest()
