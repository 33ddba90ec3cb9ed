"""Appending to the audit trail; the chainer, signing checkpoints and verifying live in
``chainer.py``, ``checkpoints.py`` and ``verification.py`` (names re-exported here).

A unit of work appends its events to ``audit_pending`` inside its own transaction, with
no lock: the data change and its events commit together or not at all. The chainer
links them, in one order, into the chain (``chainer.py``). Checkpoints (sequence
number, chain head, time) are signed with the key provider's Ed25519 key and appended to
a file outside the database, its mirrors, and sent to the witnesses: whoever holds only
the database cannot rewrite history unnoticed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from hippocrate.audit.chain import link
from hippocrate.audit.chainer import APPENDED
from hippocrate.audit.checkpoints import (
    CHECKPOINT_CONTEXT,
    HEAD_ID,
    Checkpoint,
    checkpoint_payload,
    read_checkpoints,
    write_checkpoint,
)
from hippocrate.audit.models import AuditPending
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

_PENDING = cast(Table, AuditPending.__table__)


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


def stored(pending: PendingEvent) -> dict[str, Any]:
    """The columns an event is written with, chained or pending (all but ``seq`` and
    the links)."""
    return {
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


def chain(
    events: Iterable[PendingEvent], *, after_seq: int, after_hash: bytes
) -> tuple[list[dict[str, Any]], int, bytes]:
    """The rows of ``events`` chained after (``after_seq``, ``after_hash``), and the new
    head's sequence number and hash."""
    rows = []
    seq, previous = after_seq, after_hash
    for pending in events:
        seq += 1
        values: dict[str, Any] = {"seq": seq, **stored(pending)}
        digest = link(previous, values)
        rows.append({**values, "prev_hash": previous, "hash": digest})
        previous = digest
    return rows, seq, previous


def append(session: Session, events: Sequence[PendingEvent]) -> int:
    """Write ``events``, in order, to the trail inside the caller's transaction; they
    are chained after it commits. Returns how many. One Core statement, no lock: this
    runs in every request."""
    if not events:
        return 0
    session.execute(insert(_PENDING), [stored(pending) for pending in events])
    session.info[APPENDED] = True
    return len(events)
