"""Signed checkpoints of the chain's head, and the files that hold them.

A checkpoint signs (``"hippocrate.checkpoint.v1\\0"`` ‖ seq ‖ head hash ‖ time) with the
key provider's Ed25519 key. It is appended, one JSON line, to the checkpoint file and
to every mirror; the same line is what a witness receives (see ``witness.py``).

What a checkpoint guarantees: nobody who lacks the signing key can produce one, so the
events it covers cannot be rewritten, removed or rolled back without ``audit verify``
noticing. What it does not: whoever holds the signing key can re-sign a rewritten
history; only a copy kept where they cannot reach (a mirror elsewhere, a witness)
exposes that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from hippocrate.audit.models import AuditHead
from hippocrate.vault.providers.base import KeyProvider

HEAD_ID = 1
CHECKPOINT_CONTEXT = b"hippocrate.checkpoint.v1\x00"


@dataclass(frozen=True)
class Checkpoint:
    """A signed head: ``seq`` events whose last hash is ``head``, signed at ``at``."""

    seq: int
    head: bytes
    at: datetime
    signature: bytes

    def payload(self) -> bytes:
        return checkpoint_payload(self.seq, self.head, self.at)

    def to_line(self) -> str:
        """The checkpoint as one compact JSON line (no newline): the format of the
        checkpoint file, its mirrors, and what a witness receives."""
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
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError("a checkpoint's time names its time zone")
        return cls(
            seq=int(data["seq"]),
            head=bytes.fromhex(data["head"]),
            at=at.astimezone(UTC),
            signature=bytes.fromhex(data["signature"]),
        )


def checkpoint_payload(seq: int, head: bytes, at: datetime) -> bytes:
    stamp = at.astimezone(UTC).isoformat().encode("ascii")
    return CHECKPOINT_CONTEXT + seq.to_bytes(8, "big") + head + stamp


def write_checkpoint(
    *, session: Session, provider: KeyProvider, files: Sequence[Path], now: datetime
) -> Checkpoint | None:
    """Sign the current head and append it to every checkpoint file; None when the
    head has not moved since the last checkpoint of the first file.

    The caller sends the returned checkpoint to the witnesses (``witness.publish``)."""
    head = session.get(AuditHead, HEAD_ID)
    if head is None or head.seq == 0:
        return None
    existing = read_checkpoints(files[0]) if files else []
    if existing and existing[-1].seq == head.seq:
        return None
    signature = provider.sign(checkpoint_payload(head.seq, head.hash, now))
    checkpoint = Checkpoint(head.seq, head.hash, now, signature)
    for path in files:
        append_line(path, checkpoint.to_line())
    return checkpoint


def append_line(path: Path, line: str) -> None:
    """Append one line, fsync'd. A short write with O_APPEND is atomic, so several
    processes may share the file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """The checkpoints of a file, in order; [] if it does not exist. ``ValueError``
    names the first line that is not a checkpoint."""
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
