"""Appending to the audit trail, signing checkpoints, and verifying both.

Appends lock the single head row, so concurrent writers (threads or processes) produce
one chain. Checkpoints (sequence number, chain head, time) are signed with the key
provider's Ed25519 key and appended to a file outside the database (and optionally a
mirror): whoever holds only the database cannot rewrite history unnoticed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from hippocrate.audit.chain import FIELDS, GENESIS, link
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.vault.providers.base import KeyProvider
from hippocrate.vault.signatures import verify_signature

HEAD_ID = 1
_HEAD = cast(Table, AuditHead.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)
CHECKPOINT_CONTEXT = b"hippocrate.checkpoint.v1\x00"


@dataclass(frozen=True)
class PendingEvent:
    """An event to append: ids and categories only, never personal data."""

    action: str
    actor_role: str
    outcome: str
    at: datetime
    actor_account_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
    resources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    purpose: str | None = None
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


# -- checkpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: bytes
    at: datetime
    signature: bytes

    def payload(self) -> bytes:
        return checkpoint_payload(self.seq, self.head, self.at)

    def to_line(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "head": self.head.hex(),
                "at": self.at.astimezone(UTC).isoformat(),
                "signature": self.signature.hex(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        data = json.loads(line)
        return cls(
            seq=int(data["seq"]),
            head=bytes.fromhex(data["head"]),
            at=datetime.fromisoformat(data["at"]),
            signature=bytes.fromhex(data["signature"]),
        )


def checkpoint_payload(seq: int, head: bytes, at: datetime) -> bytes:
    stamp = at.astimezone(UTC).isoformat().encode("ascii")
    return CHECKPOINT_CONTEXT + seq.to_bytes(8, "big") + head + stamp


def write_checkpoint(
    *, session: Session, provider: KeyProvider, files: Sequence[Path], now: datetime
) -> Checkpoint | None:
    """Sign the current head and append it to every checkpoint file; None when the
    head has not moved since the last checkpoint of the first file."""
    head = session.get(AuditHead, HEAD_ID)
    if head is None or head.seq == 0:
        return None
    existing = read_checkpoints(files[0]) if files else []
    if existing and existing[-1].seq == head.seq:
        return None
    signature = provider.sign(checkpoint_payload(head.seq, head.hash, now))
    checkpoint = Checkpoint(head.seq, head.hash, now, signature)
    for path in files:
        _append_line(path, checkpoint.to_line())
    return checkpoint


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: Path) -> list[Checkpoint]:
    if not path.exists():
        return []
    found = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), 1):
        if not line.strip():
            continue
        try:
            found.append(Checkpoint.from_line(line))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}: line {number} is not a checkpoint") from None
    return found


# -- verification ---------------------------------------------------------------------


@dataclass
class Verification:
    events: int = 0
    checkpoints: int = 0
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, seq: int, problem: str) -> None:
        if self.first_bad_seq is None or seq < self.first_bad_seq:
            self.first_bad_seq = seq
        self.problems.append(f"sequence {seq}: {problem}")


def verify(
    *,
    session: Session,
    public_key: bytes,
    checkpoint_files: Iterable[Path],
    batch: int = 20_000,
) -> Verification:
    """Check the chain row by row, the head, and every signed checkpoint.

    Names the first bad sequence number: a gap (deleted row), a broken link (inserted or
    reordered row), a wrong hash (changed row), a head ahead of the rows (truncated
    tail), or a checkpoint that the chain no longer matches (rewritten or rolled-back
    history) or whose signature fails.
    """
    report = Verification()
    checkpoints: dict[int, Checkpoint] = {}
    for path in checkpoint_files:
        for checkpoint in read_checkpoints(path):
            checkpoints.setdefault(checkpoint.seq, checkpoint)
    last, previous, hashes_at = _verify_chain(session, report, set(checkpoints), batch)
    head = session.get(AuditHead, HEAD_ID)
    intact = report.ok
    if intact and head is not None and (head.seq, head.hash) != (last, previous):
        report.fail(last + 1, f"the head says {head.seq} events; the chain ends at {last}")
    for seq in sorted(checkpoints):
        checkpoint = checkpoints[seq]
        report.checkpoints += 1
        if not verify_signature(public_key, checkpoint.payload(), checkpoint.signature):
            report.fail(seq, "checkpoint signature does not verify")
        elif seq > last and intact:
            report.fail(last + 1, f"a signed checkpoint covers {seq} events: the tail was removed")
        elif seq in hashes_at and hashes_at[seq] != checkpoint.head:
            earlier = [s for s in checkpoints if s < seq]
            report.fail(
                (max(earlier) + 1) if earlier else 1,
                f"the chain no longer matches the checkpoint at {seq}: history was rewritten",
            )
    return report


def _verify_chain(
    session: Session, report: Verification, wanted: set[int], batch: int
) -> tuple[int, bytes, dict[int, bytes]]:
    """Walk the rows in order; returns the last good seq, its hash, and the hashes at
    the ``wanted`` sequence numbers. Stops judging at the first break."""
    hashes_at: dict[int, bytes] = {}
    columns = [getattr(AuditEvent, name) for name in FIELDS]
    statement = (
        select(*columns, AuditEvent.prev_hash, AuditEvent.hash)
        .order_by(AuditEvent.seq)
        .execution_options(yield_per=batch)
    )
    expected, previous = 1, GENESIS
    for row in session.execute(statement):
        report.events += 1
        if not report.ok:
            continue
        values = dict(zip(FIELDS, row[: len(FIELDS)], strict=True))
        seq = int(values["seq"])
        if seq != expected:
            report.fail(expected, f"missing (next present is {seq}): a row was deleted")
        elif row.prev_hash != previous:
            report.fail(seq, "does not follow its predecessor: a row was inserted or reordered")
        elif link(previous, values) != row.hash:
            report.fail(seq, "its content does not match its hash: the row was altered")
        else:
            previous = row.hash
            if seq in wanted:
                hashes_at[seq] = row.hash
            expected += 1
    return expected - 1, previous, hashes_at
