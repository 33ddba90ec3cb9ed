"""Series read from the shared state at scrape time: the same in every process, so
whichever process answers a scrape reads them once (they are not in the processes'
files). Counts and ages only: nothing sealed is opened, no id leaves the database."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from hippocrate.audit import chainer
from hippocrate.audit.checkpoints import Checkpoint
from hippocrate.breach.models import Notice, NoticeStatus
from hippocrate.runtime import Runtime

log = logging.getLogger(__name__)


def chain_lag(runtime: Runtime) -> tuple[int, float]:
    """Events waiting for the chainer, and the age (seconds) of the oldest; (0, 0.0)
    when none waits or the database has no ``audit_pending`` table yet."""
    try:
        count, oldest = chainer.pending_count(runtime.sessions.engine)
    except SQLAlchemyError:
        return 0, 0.0
    if oldest is None:
        return count, 0.0
    return count, max(0.0, (datetime.now(UTC) - oldest).total_seconds())


def last_checkpoint(path: Path) -> Checkpoint | None:
    """The last checkpoint of a checkpoint file, reading only its tail (the file grows
    by a line a minute, for years)."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - 8192))
            tail = file.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(tail.splitlines()):
        if line.strip():
            try:
                return Checkpoint.from_line(line)
            except (ValueError, KeyError, TypeError):
                return None
    return None


class StateCollector(Collector):
    """The audit chain's lag, the last checkpoint's age, the notice ledger and the job
    queue, read when scraped. A part that cannot be read is counted in
    ``hippocrate_metrics_unreadable`` instead of failing the scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        unreadable = GaugeMetricFamily(
            "hippocrate_metrics_unreadable",
            "1 for each part of the shared state this scrape could not read.",
            labels=["part"],
        )
        count, age = chain_lag(self.runtime)
        yield GaugeMetricFamily(
            "hippocrate_audit_pending_events", "Audit events waiting for the chainer.", count
        )
        yield GaugeMetricFamily(
            "hippocrate_audit_chain_lag_seconds",
            "Age of the oldest audit event not yet chained (0: none waits).",
            age,
        )
        checkpoint = last_checkpoint(self.runtime.settings.checkpoint_files[0])
        if checkpoint is not None:
            yield GaugeMetricFamily(
                "hippocrate_audit_checkpoint_age_seconds",
                "Age of the last signed checkpoint in the checkpoint file.",
                max(0.0, (datetime.now(UTC) - checkpoint.at).total_seconds()),
            )
        try:
            yield from self._notices()
        except SQLAlchemyError as exc:
            log.warning("metrics: notices unreadable: %s", type(exc).__name__)
            unreadable.add_metric(["notices"], 1)
        try:
            yield from self._queue()
        except Exception as exc:  # noqa: BLE001 - Redis, SQLite: any failure is unreadable
            log.warning("metrics: job queue unreadable: %s", type(exc).__name__)
            unreadable.add_metric(["job_queue"], 1)
        yield unreadable

    def _notices(self) -> Iterator[Metric]:
        table = Notice.__table__
        with self.runtime.sessions.engine.connect() as connection:
            rows = connection.execute(
                select(table.c.status, func.count()).group_by(table.c.status)
            ).all()
        counts = {str(NoticeStatus(status)): int(n) for status, n in rows}
        by_status = GaugeMetricFamily(
            "hippocrate_notices",
            "Art. 34 notices in the ledger, by status (queued + sending: the depth).",
            labels=["status"],
        )
        for status in NoticeStatus:
            by_status.add_metric([str(status)], counts.get(str(status), 0))
        yield by_status
        yield CounterMetricFamily(
            "hippocrate_notices_delivered",
            "Art. 34 notices the mail relay (or the outbox) accepted, from the ledger.",
            counts.get(str(NoticeStatus.SENT), 0),
        )

    def _queue(self) -> Iterator[Metric]:
        from hippocrate.breach import jobs

        pending = jobs.open_queue(self.runtime).pending_count()
        yield GaugeMetricFamily(
            "hippocrate_job_queue_pending", "Tasks waiting in the notice job queue.", pending
        )
