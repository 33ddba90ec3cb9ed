"""The notice job on a durable queue (Huey): SQLite in the embedded default, Redis beyond.

The queue carries hints ("prepare the notices of this incident", "send these
notices"); the ledger (``notices``) carries the truth, so a task lost with a killed
worker loses nothing: the sweep, every minute and at every worker's start, queues
again whatever is due (queued and due, or claimed with its lease run out). Several
workers (``hippocrate breach worker``, threads or processes, on one machine or many
with Redis) share the work; a notice is claimed by one of them at a time.

Every task runs in a unit of work of the notice job's principal (``NOTICE_ACTOR``), so
its reads are recorded in the trail and held by the guard's notice rule.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey, crontab

from hippocrate.breach import notices
from hippocrate.notify import delivery
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work

log = logging.getLogger(__name__)

#: The runtime of the process that runs tasks (a worker), and its queue, by queue name.
_RUNTIMES: dict[str, Runtime] = {}
_queues: dict[str, Huey] = {}


def queue_name(runtime: Runtime) -> str:
    """One queue per deployment: named after the database, so two deployments sharing a
    Redis never take each other's tasks."""
    url = runtime.settings.resolved_database_url.encode("utf-8")
    return "hippocrate-notices-" + hashlib.sha256(url).hexdigest()[:12]


def _queue_for(runtime: Runtime) -> Huey:
    """The deployment's notice queue, with its tasks; tasks run with ``runtime``."""
    name = queue_name(runtime)
    settings = runtime.settings
    huey: Huey
    if settings.redis_url:
        huey = RedisHuey(name, url=settings.redis_url, utc=True)
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        huey = SqliteHuey(name, filename=str(settings.data_dir / "jobs.sqlite3"), utc=True)
    _RUNTIMES[name] = runtime
    prepare = huey.task(name="prepare-notices", retries=5, retry_delay=2)(_prepare)
    send = huey.task(name="send-notices", retries=5, retry_delay=2)(_send)
    huey.periodic_task(crontab(minute="*"), name="sweep-notices")(_sweep)
    huey.hippocrate_tasks = {"prepare": prepare, "send": send}
    return huey


def enqueue_prepare(huey: Huey, incident_id: uuid.UUID) -> None:
    huey.hippocrate_tasks["prepare"](queue_name_of(huey), str(incident_id))


def enqueue_send(huey: Huey, batch: list[uuid.UUID]) -> None:
    huey.hippocrate_tasks["send"](queue_name_of(huey), [str(i) for i in batch])


def queue_name_of(huey: Huey) -> str:
    return str(huey.name)


def sweep(runtime: Runtime, huey: Huey) -> int:
    """Queue every due notice again; how many."""
    now = datetime.now(UTC)
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        for incident_id in notices.unprepared(session):
            notices.prepare(session=session, incident_id=incident_id, now=now)
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        batches = notices.due(session=session, now=now)
    for batch in batches:
        enqueue_send(huey, batch)
    return sum(len(b) for b in batches)


def send_batch(runtime: Runtime, batch: list[uuid.UUID]) -> int:
    """Claim the due notices of ``batch`` in one unit of work, send them over one SMTP
    connection, each marked sent the moment the relay accepts it, then settle the batch
    (the trail's events, the retries) in one more; how many were delivered.

    A worker killed half-way leaves its claimed notices to the sweep once their lease
    runs out: those already marked sent stay sent, the others are sent then, and only
    the one accepted and not yet marked can go twice (the same message again)."""
    settings = runtime.settings
    now = datetime.now(UTC)
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        claimed = [
            found
            for notice_id in batch
            if (
                found := notices.claim(
                    session=session, settings=settings, notice_id=notice_id, now=now
                )
            )
            is not None
        ]
    if not claimed:
        return 0
    by_email = {c.email_id: c.notice_id for c in claimed}
    engine = runtime.sessions.engine

    def delivered(email_id: uuid.UUID) -> None:
        notices.mark_sent(engine, notice_id=by_email[email_id], email_id=email_id)

    # Outside any transaction: a slow relay holds no database connection.
    outcomes = delivery.deliver_many(
        settings,
        [(c.message, c.email_id) for c in claimed],
        on_delivered=delivered,
    )
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        for found, ok in zip(claimed, outcomes, strict=True):
            notices.settle(
                session=session,
                notice_id=found.notice_id,
                email_id=found.email_id,
                delivered=ok,
                now=datetime.now(UTC),
            )
    return sum(outcomes)


def send_one(runtime: Runtime, notice_id: uuid.UUID) -> bool:
    return send_batch(runtime, [notice_id]) == 1


# -- the tasks, as the queue calls them ----------------------------------------------


def _runtime(name: str) -> Runtime:
    runtime = _RUNTIMES.get(name)
    if runtime is None:
        raise RuntimeError(f"no runtime for the queue {name!r} in this process")
    return runtime


def _prepare(name: str, incident_id: str) -> int:
    runtime = _runtime(name)
    now = datetime.now(UTC)
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        batches = notices.prepare(session=session, incident_id=uuid.UUID(incident_id), now=now)
    huey = _queues[name]
    for batch in batches:
        enqueue_send(huey, batch)
    return sum(len(b) for b in batches)


def _send(name: str, batch: list[str]) -> int:
    return send_batch(_runtime(name), [uuid.UUID(i) for i in batch])


def _sweep() -> None:
    for name, huey in list(_queues.items()):
        try:
            sweep(_runtime(name), huey)
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again
            log.warning("notice sweep failed: %s", type(exc).__name__)


def open_queue(runtime: Runtime) -> Huey:
    """The deployment's queue, made once per process."""
    name = queue_name(runtime)
    if name not in _queues:
        _queues[name] = _queue_for(runtime)
    _RUNTIMES[name] = runtime
    return _queues[name]


def pending(huey: Huey) -> int:
    """How many tasks wait in the queue."""
    return int(huey.pending_count())


def run_pending(
    huey: Huey, *, limit: int = 10_000, on_task: Callable[[int], None] | None = None
) -> int:
    """Run the queue's pending tasks in this process, in order (tests, the demo, and a
    one-shot ``hippocrate breach worker --once``); how many ran. ``on_task`` is told,
    after each task, how many wait (a task may queue more: preparing queues sending)."""
    ran = 0
    while ran < limit:
        task = huey.dequeue()
        if task is None:
            return ran
        huey.execute(task)
        ran += 1
        if on_task is not None:
            on_task(pending(huey))
    return ran


def consumer(huey: Huey, *, workers: int, **options: Any) -> Any:
    """A Huey consumer of ``workers`` threads, the periodic sweep on."""
    return huey.create_consumer(workers=workers, worker_type="thread", periodic=True, **options)
