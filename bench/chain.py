"""The chain's lag under load: how long a committed event waits for the chainer.

The real app (``hippocrate.app:create_app``, each worker with its chainer, the default
``AUDIT_CHAIN_SECONDS``) is driven by the security tax's heaviest writer (a patient
posting a message with a PDF, eight clients at once, closed loop), while a probe in
this process reads the age of the oldest pending event (``now - min(at)`` of
``audit_pending``) and how many wait, every 10 ms. After the load, the time until
nothing is pending, and that the chain then verifies, contiguous up to its head.
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis
from sqlalchemy import func, select

from bench import api, tax
from hippocrate.audit.chainer import pending_count
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.config import Settings
from hippocrate.db.engine import make_engine

SAMPLE_SECONDS = 0.01
REQUESTS = 1200


@dataclass
class Lag:
    deployment: str
    throughput: float  # posts answered per second
    events: int  # chained during the load
    samples: list[float] = field(default_factory=list)  # age of the oldest pending, s
    waiting: list[int] = field(default_factory=list)  # pending events at each sample
    drained: float = 0.0  # seconds from the end of the load to nothing pending
    contiguous: bool = False

    def percentile(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass
class ChainResult:
    lags: list[Lag] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _probe(url: str, lag: Lag, running: threading.Event) -> None:
    engine = make_engine(url)
    try:
        while running.is_set():
            count, oldest = pending_count(engine)
            age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
            lag.samples.append(max(age, 0.0))
            lag.waiting.append(count)
            time.sleep(SAMPLE_SECONDS)
    finally:
        engine.dispose()


def _chain_state(url: str) -> tuple[int, int | None, int | None, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            count, lo, hi = connection.execute(
                select(func.count(), func.min(AuditEvent.seq), func.max(AuditEvent.seq))
            ).one()
            head = connection.execute(select(AuditHead.seq)).scalar_one()
    finally:
        engine.dispose()
    return int(count), lo, hi, int(head)


def _measure(name: str, url: str, settings: Settings, workers: int, root: Path) -> Lag:
    seats = api._seed(settings, seats=tax.CLIENTS)
    log = root / f"{name}.log"
    print(f"chain: {name}…", file=sys.stderr, flush=True)
    with tax.serve(tax._HIPPOCRATE, api._server_env(settings), workers, log) as (base, pid):
        signed = tax._signed_in(base, seats)
        before = _chain_state(url)[0]
        lag = Lag(name, 0.0, 0)
        running = threading.Event()
        running.set()
        probe = threading.Thread(target=_probe, args=(url, lag, running))
        probe.start()
        try:
            measured = tax.closed_loop(base, signed, "post", pid, "hippocrate", REQUESTS)
        finally:
            ended = time.perf_counter()
            running.clear()
            probe.join()
        engine = make_engine(url)
        try:
            while pending_count(engine)[0]:
                time.sleep(0.005)
        finally:
            engine.dispose()
        lag.drained = time.perf_counter() - ended
    if settings.redis_url:
        api._forget_guard_state(settings, seats)
    count, lo, hi, head = _chain_state(url)
    lag.throughput = measured.throughput
    lag.events = count - before
    lag.contiguous = (lo, hi, head) == (1, count, count)
    return lag


def run() -> ChainResult:
    result = ChainResult()
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-chain-") as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'h.db'}"
        settings = api._settings(root / "sqlite", url, None)
        api._init(settings)
        result.lags.append(_measure("SQLite, 1 worker", url, settings, 1, root))
        try:
            api._postgres_version()
            api._redis_version()
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped.append(f"PostgreSQL + Redis: not reachable ({type(exc).__name__})")
            return result
        for workers in (1, 2):
            with api._postgres_database() as pg_url:
                settings = api._settings(root / f"pg{workers}", pg_url, api.REDIS_URL)
                api._init(settings)
                name = f"PostgreSQL + Redis, {workers} worker{'s' if workers > 1 else ''}"
                result.lags.append(_measure(name, pg_url, settings, workers, root))
    return result


def report(result: ChainResult) -> str:
    lines = [
        "## The chain's lag",
        "",
        f"A patient posts a message with a PDF, {tax.CLIENTS} clients at once, "
        f"{REQUESTS} posts (closed loop), against the real app with its chainer; the age "
        "of the oldest event waiting for the chainer, sampled every "
        f"{SAMPLE_SECONDS * 1e3:.0f} ms during the load.",
        "",
        "| Deployment | Posts/s | Events chained | Lag p50 (ms) | Lag p99 (ms) | Lag max (ms) "
        "| Pending at most | Drained after (ms) | Chain contiguous to its head |",
        "|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for lag in result.lags:
        lines.append(
            f"| {lag.deployment} | {lag.throughput:,.0f} | {lag.events:,} "
            f"| {lag.percentile(50) * 1e3:,.1f} | {lag.percentile(99) * 1e3:,.1f} "
            f"| {max(lag.samples) * 1e3:,.1f} | {max(lag.waiting):,} "
            f"| {lag.drained * 1e3:,.0f} | {'yes' if lag.contiguous else 'NO'} |"
        )
    lines += [f"- skipped: {s}" for s in result.skipped]
    return "\n".join(lines) + "\n\n"
