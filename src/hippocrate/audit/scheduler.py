"""Signed checkpoints written by the app itself, every ``audit_checkpoint_seconds``.

Each app process runs one; a checkpoint is written only when the chain moved since the
last one, and appending a short line to a file opened with O_APPEND is atomic, so
several processes may share the files. Every round also sends the new checkpoint, and
any still pending, to the witnesses (``witness.py``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from hippocrate.audit.checkpoints import Checkpoint, write_checkpoint
from hippocrate.audit.witness import Delivery, publish
from hippocrate.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Round:
    """One checkpoint round: the checkpoint written (None: the chain had not moved)
    and what the witnesses took."""

    written: Checkpoint | None
    delivery: Delivery


def checkpoint_round(runtime: Runtime) -> Round:
    """Sign the head if the chain moved, append it to the checkpoint files, and send
    it with whatever is pending to the witnesses. A witness failure is logged and kept
    pending, never raised; a failure to write the files is raised."""
    with runtime.sessions() as session:
        written = write_checkpoint(
            session=session,
            provider=runtime.sessions.vault.provider,
            files=runtime.settings.checkpoint_files,
            now=datetime.now(UTC),
        )
    return Round(written, publish(runtime.settings, written))


def checkpoint_once(runtime: Runtime) -> int | None:
    """A checkpoint round; the sequence number written, or None."""
    written = checkpoint_round(runtime).written
    return written.seq if written is not None else None


async def run_checkpoints(runtime: Runtime, interval: float) -> None:
    """Until cancelled: a checkpoint round every ``interval`` seconds. A failure is
    logged and retried at the next tick; it never stops the app."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(checkpoint_once, runtime)
        except Exception as exc:  # noqa: BLE001 - logged; the next tick retries
            log.warning("audit checkpoint failed: %s", type(exc).__name__)
