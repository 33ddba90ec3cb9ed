"""Opaque queue entries: what a practitioner sends to take one consultation of the list.

The queue shows waiting times only; each entry carries an id the practitioner sends
back to take it (``POST /queue/{entry}/take``): a keyed digest (HMAC-SHA256, 128 bits)
of the queue's specialty and the consultation's id, under a key derived from the key
provider's index key (never stored). It reveals neither the consultation nor the
patient, cannot be made for a consultation without the key, and names the same
consultation at every listing while it waits. Taking one finds the waiting
consultation of the caller's queue whose digest it is (the queue holds ids only, so
nothing of a patient is opened to look); none is a consultation no longer waiting, or
one that never was in the caller's queue, and the two are not told apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid

from sqlalchemy.orm import Session

from hippocrate.db.sealed import vault_of

#: What the derived key is for (the provider derives one key per purpose).
PURPOSE = b"hippocrate queue entry v1"
_BYTES = 16
#: The length of an entry id: 16 bytes in URL-safe base64 without padding.
LENGTH = 22
_SHAPE = re.compile(r"[A-Za-z0-9_-]{22}")


def entry_key(session: Session) -> bytes:
    return vault_of(session).provider.derive_index_key(PURPOSE)


def entry_id(key: bytes, specialty: str, consultation_id: uuid.UUID) -> str:
    """The opaque id of a waiting consultation of ``specialty``'s queue."""
    digest = hmac.new(
        key, specialty.encode("utf-8") + b"\x00" + consultation_id.bytes, hashlib.sha256
    ).digest()[:_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse(token: str) -> bytes | None:
    """The digest an entry id holds, or None when it cannot be an entry id."""
    if not _SHAPE.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "==")
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _BYTES else None


def matches(key: bytes, digest: bytes, specialty: str, consultation_id: uuid.UUID) -> bool:
    expected = parse(entry_id(key, specialty, consultation_id))
    return expected is not None and hmac.compare_digest(expected, digest)
