"""Signed checkpoints written by the app itself, every ``audit_checkpoint_seconds``.

Each app process runs one; a checkpoint is written only when the chain moved since the
last one, and appending a short line to a file opened with O_APPEND is atomic, so
several processes may share the files.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from hippocrate.audit.service import write_checkpoint
from hippocrate.runtime import Runtime

log = logging.getLogger(__name__)


def checkpoint_once(runtime: Runtime) -> int | None:
    """Write a checkpoint if the chain moved; its sequence number, or None."""
    with runtime.sessions() as session:
        written = write_checkpoint(
            session=session,
            provider=runtime.sessions.vault.provider,
            files=runtime.settings.checkpoint_files,
            now=datetime.now(UTC),
        )
    return written.seq if written is not None else None


async def run_checkpoints(runtime: Runtime, interval: float) -> None:
    """Until cancelled: a checkpoint every ``interval`` seconds. A failure is logged
    and retried at the next tick; it never stops the app."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(checkpoint_once, runtime)
        except Exception as exc:  # noqa: BLE001 - logged; the next tick retries
            log.warning("audit checkpoint failed: %s", type(exc).__name__)
