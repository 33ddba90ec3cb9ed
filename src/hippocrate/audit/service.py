"""Appending to the audit trail; signing checkpoints and verifying both live in
``checkpoints.py`` and ``verification.py`` (their names are re-exported here).

Appends lock the single head row, so concurrent writers (threads or processes) produce
one chain. Checkpoints (sequence number, chain head, time) are signed with the key
provider's Ed25519 key and appended to a file outside the database, its mirrors, and
sent to the witnesses: whoever holds only the database cannot rewrite history unnoticed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from hippocrate.audit.chain import link
from hippocrate.audit.checkpoints import (
    CHECKPOINT_CONTEXT,
    HEAD_ID,
    Checkpoint,
    checkpoint_payload,
    read_checkpoints,
    write_checkpoint,
)
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.verification import Verification, verify
from hippocrate.tags import Category, Outcome, Purpose, Tag

__all__ = [
    "CHECKPOINT_CONTEXT",
    "HEAD_ID",
    "Checkpoint",
    "PendingEvent",
    "Verification",
    "append",
    "chain",
    "checkpoint_payload",
    "read_checkpoints",
    "verify",
    "write_checkpoint",
]

_HEAD = cast(Table, AuditHead.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)


@dataclass(frozen=True)
class PendingEvent:
    """An event to append: ids and categories only, never personal data. The tag,
    the outcome, the categories and the purpose come from the trail's vocabulary
    (``hippocrate.tags``); their values are what the trail stores."""

    action: Tag
    actor_role: str
    outcome: Outcome
    at: datetime
    actor_account_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    resources: tuple[str, ...] = ()
    categories: tuple[Category, ...] = ()
    purpose: Purpose | None = None
    request_id: str | None = None


def chain(
    events: Iterable[PendingEvent], *, after_seq: int, after_hash: bytes
) -> tuple[list[dict[str, Any]], int, bytes]:
    """The rows of ``events`` chained after (``after_seq``, ``after_hash``), and the new
    head's sequence number and hash."""
    rows = []
    seq, previous = after_seq, after_hash
    for pending in events:
        seq += 1
        values: dict[str, Any] = {
            "seq": seq,
            "at": pending.at,
            "actor_account_id": pending.actor_account_id,
            "actor_role": pending.actor_role,
            "action": pending.action,
            "patient_id": pending.patient_id,
            "resources": list(pending.resources),
            "categories": sorted(set(pending.categories)),
            "purpose": pending.purpose,
            "outcome": pending.outcome,
            "request_id": pending.request_id,
        }
        digest = link(previous, values)
        rows.append({**values, "prev_hash": previous, "hash": digest})
        previous = digest
    return rows, seq, previous


def append(session: Session, events: Sequence[PendingEvent]) -> int:
    """Chain ``events`` after the head, in order, inside the caller's transaction;
    returns the last sequence number. Core statements, no ORM bookkeeping: this runs
    in every request."""
    if not events:
        return 0
    head = _HEAD
    # Take the head's row lock first (a write), so no other writer reads the same head.
    session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=head.c.seq))
    found = session.execute(select(head.c.seq, head.c.hash).where(head.c.id == HEAD_ID)).first()
    if found is None:
        raise RuntimeError("the audit head row is missing: the schema is not migrated")
    rows, seq, previous = chain(events, after_seq=int(found.seq), after_hash=bytes(found.hash))
    session.execute(insert(_EVENTS), rows)
    session.execute(update(head).where(head.c.id == HEAD_ID).values(seq=seq, hash=previous))
    return seq
