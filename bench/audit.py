"""Audit trail and guard costs: appending events, evaluating the guard's rules, and
verifying a chain of 1,000,000 events."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from hippocrate.audit.chain import GENESIS
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import PendingEvent, append, chain, verify, write_checkpoint
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.guard.state import DatabaseState, LocalState, RedisState
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider

T0 = datetime(2026, 11, 1, tzinfo=UTC)
# The guard's read check: containment flag, the hourly and the daily window.
WINDOWS = (("reads", 3600.0), ("reads-day", 86_400.0))


@dataclass
class AuditResult:
    append_one_us: float
    append_five_us: float
    guard_local_us: float
    guard_database_us: float
    guard_redis_us: float | None
    verify_events: int
    verify_seconds: float
    fill_seconds: float


def _event(n: int) -> PendingEvent:
    return PendingEvent(
        action="consultation:message:read",
        actor_role="practitioner",
        outcome="allowed",
        at=T0 + timedelta(milliseconds=n),
        actor_account_id=uuid.UUID(int=n % 50),
        patient_id=uuid.UUID(int=10_000 + n % 5000),
        resources=(f"message:{uuid.UUID(int=n)}",),
        categories=("health",),
        purpose="care",
        request_id=f"{n:032x}",
    )


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def run(*, events: int = 1_000_000, redis_url: str | None = None) -> AuditResult:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        vault = Vault(FileKeyProvider.create(root / "root.key"))
        engine = make_engine(f"sqlite:///{root / 'bench.db'}")
        upgrade(engine)
        sessions = unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="benchmarks of the store and the trail themselves"
        )

        # Append: inside the request's transaction, as the unit of work does; the commit
        # the request makes anyway is not counted.
        one, five = [], []
        for n in range(400):
            batch = [_event(n)] if n % 2 == 0 else [_event(n + k) for k in range(5)]
            with sessions.begin() as session:
                started = time.perf_counter()
                append(session, batch)
                (one if n % 2 == 0 else five).append(time.perf_counter() - started)

        # Guard: one rule evaluation (distinct patients in a sliding window).
        local = LocalState()
        account = uuid.uuid4()
        samples = []
        for n in range(20_000):
            started = time.perf_counter()
            local.observe(account, uuid.UUID(int=n % 15), now=float(n), windows=WINDOWS)
            samples.append(time.perf_counter() - started)
        guard_local = _median_us(samples)
        # The embedded default: the state in the database, written in the request's own
        # transaction (the commit, which the request makes anyway, is not counted).
        shared = DatabaseState(sessions)
        samples = []
        for n in range(2_000):
            with sessions.begin() as session:
                started = time.perf_counter()
                shared.observe(
                    account, uuid.UUID(int=n % 15), now=float(n), windows=WINDOWS, session=session
                )
                samples.append(time.perf_counter() - started)
        guard_database = _median_us(samples)
        guard_redis = None
        if redis_url:
            remote = RedisState(redis_url, prefix=f"bench:{uuid.uuid4().hex}:")
            samples = []
            for n in range(5_000):
                started = time.perf_counter()
                remote.observe(account, uuid.UUID(int=n % 15), now=float(n), windows=WINDOWS)
                samples.append(time.perf_counter() - started)
            guard_redis = _median_us(samples)
            remote.release(account)

        # Verify: a chain of ``events`` rows, written directly (computed links), then checked.
        engine.dispose()
        (root / "bench.db").unlink()
        engine = make_engine(f"sqlite:///{root / 'bench.db'}")
        upgrade(engine)
        sessions = unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="benchmarks of the store and the trail themselves"
        )
        started = time.perf_counter()
        seq, previous = 0, GENESIS
        with engine.begin() as connection:
            for start in range(1, events + 1, 20_000):
                batch = [_event(n) for n in range(start, min(start + 20_000, events + 1))]
                rows, seq, previous = chain(batch, after_seq=seq, after_hash=previous)
                connection.execute(insert(AuditEvent), rows)
            connection.execute(
                AuditHead.__table__.update().values(seq=events, hash=previous)  # type: ignore[attr-defined]
            )
        fill = time.perf_counter() - started
        files = [root / "checkpoints.jsonl"]
        with sessions() as session:
            write_checkpoint(session=session, provider=vault.provider, files=files, now=T0)
        started = time.perf_counter()
        with sessions() as session:
            report = verify(
                session=session,
                public_key=vault.provider.signing_public_key(),
                checkpoint_files=files,
            )
        seconds = time.perf_counter() - started
        assert report.ok, report.problems
        engine.dispose()
        return AuditResult(
            append_one_us=_median_us(one),
            append_five_us=_median_us(five),
            guard_local_us=guard_local,
            guard_database_us=guard_database,
            guard_redis_us=guard_redis,
            verify_events=report.events,
            verify_seconds=seconds,
            fill_seconds=fill,
        )


def report(result: AuditResult) -> str:
    redis = f"{result.guard_redis_us:,.1f}" if result.guard_redis_us is not None else "not run"
    rate = result.verify_events / result.verify_seconds
    return "\n".join(
        [
            "## Audit trail and guard",
            "",
            "| Operation | Median |",
            "|---|--:|",
            f"| append 1 event, in a request's transaction | {result.append_one_us:,.0f} µs |",
            f"| append 5 events, in a request's transaction | {result.append_five_us:,.0f} µs |",
            f"| guard read check, in-process state | {result.guard_local_us:,.1f} µs |",
            f"| guard read check, database state (SQLite, the embedded default) "
            f"| {result.guard_database_us:,.1f} µs |",
            f"| guard read check, Redis state (loopback) | {redis} µs |",
            "",
            f"`audit verify` on {result.verify_events:,} events (SQLite, one checkpoint): "
            f"{result.verify_seconds:,.1f} s, {rate:,.0f} events/s "
            f"(writing them took {result.fill_seconds:,.1f} s).",
            "",
        ]
    )
