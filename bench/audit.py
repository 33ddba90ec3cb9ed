"""Audit trail and guard costs: appending events, evaluating the guard's rules, and
verifying a chain of 1,000,000 events beside the floor: a plain pass over the same rows
(the same canonical bytes, SHA-256, nothing else checked) with json, with orjson, and
with orjson on two cores, in the same run."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import insert

from hippocrate.audit.chain import CONTEXT, GENESIS
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import PendingEvent, append, chain, verify, write_checkpoint
from hippocrate.audit.walk import cores
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
    verify_seconds: float  # with one process per core (the default)
    fill_seconds: float
    verify_alone_seconds: float = 0.0  # with one process
    floors: dict[str, float] = field(default_factory=dict)  # floor name -> seconds
    cores: int = 1
    repeat: int = 1


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


# The floor: what reading the same rows and hashing the same canonical bytes costs at
# the least, with nothing else checked (no order, no link, no fallback).
FLOOR_ROWS = (
    "SELECT seq, at, actor_account_id, actor_role, action, patient_id, resources, categories, "
    "purpose, outcome, request_id, prev_hash, hash FROM audit_events "
    "WHERE seq BETWEEN ? AND ? ORDER BY seq"
)


def _uuid(hex32: str | None) -> str | None:
    if hex32 is None:
        return None
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def _json_dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def floor_pass(path: str, lo: int, hi: int, fast: bool) -> int:
    """Hash rows ``lo..hi`` as the chain does; the number whose digest differs (0: the
    bytes are the chain's)."""
    dumps: Callable[[object], bytes] = orjson.dumps if fast else _json_dumps
    loads: Callable[[str], object] = orjson.loads if fast else json.loads
    sha256, wrong = hashlib.sha256, 0
    connection = sqlite3.connect(path)
    cursor = connection.execute(FLOOR_ROWS, (lo, hi))
    while rows := cursor.fetchmany(20_000):
        for row in rows:
            (seq, at, actor, role, action, patient, res, cats, purpose, outcome, rid, prev,
             digest) = row  # fmt: skip
            body = dumps([seq, at[:10] + "T" + at[11:] + "Z", _uuid(actor), role, action,
                          _uuid(patient), loads(res), loads(cats), purpose, outcome,
                          rid])  # fmt: skip
            if sha256(CONTEXT + prev + body).digest() != digest:
                wrong += 1
    connection.close()
    return wrong


def _floor_half(task: tuple[str, int, int]) -> int:
    return floor_pass(*task, fast=True)


def floor_two_cores(path: str, events: int) -> int:
    """The orjson floor in two processes, each over one half (started inside the
    timing, as verify's are)."""
    halves = [(path, 1, events // 2), (path, events // 2 + 1, events)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        return sum(pool.map(_floor_half, halves))


def _best(repeat: int, measure: Callable[[], object]) -> float:
    """The shortest of ``repeat`` runs; a floor must hash every row to its digest."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        wrong = measure()
        times.append(time.perf_counter() - started)
        assert not wrong, f"{wrong} rows hashed to another digest: not the chain's bytes"
    return min(times)


def run(*, events: int = 1_000_000, redis_url: str | None = None, repeat: int = 2) -> AuditResult:
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
        public_key = vault.provider.signing_public_key()
        reports = []

        def verify_with(workers: int | None) -> None:
            with sessions() as session:
                reports.append(
                    verify(
                        session=session,
                        public_key=public_key,
                        checkpoint_files=files,
                        workers=workers,
                    )
                )

        path = str(root / "bench.db")
        floors: dict[str, float] = {}
        for name, measure in (
            ("json", lambda: floor_pass(path, 1, events, fast=False)),
            ("orjson", lambda: floor_pass(path, 1, events, fast=True)),
            ("orjson, two cores", lambda: floor_two_cores(path, events)),
        ):
            floors[name] = _best(repeat, measure)
        seconds = _best(repeat, lambda: verify_with(None))
        alone = _best(repeat, lambda: verify_with(1))
        for report in reports:
            assert report.ok, report.problems
            assert report.events == events
        engine.dispose()
        return AuditResult(
            append_one_us=_median_us(one),
            append_five_us=_median_us(five),
            guard_local_us=guard_local,
            guard_database_us=guard_database,
            guard_redis_us=guard_redis,
            verify_events=events,
            verify_seconds=seconds,
            fill_seconds=fill,
            verify_alone_seconds=alone,
            floors=floors,
            cores=cores(),
            repeat=repeat,
        )


def report(result: AuditResult) -> str:
    redis = f"{result.guard_redis_us:,.1f}" if result.guard_redis_us is not None else "not run"
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
            *_verify_report(result),
        ]
    )


def _verify_report(result: AuditResult) -> list[str]:
    events = result.verify_events
    two_cores = result.floors.get("orjson, two cores", 0.0)
    rows = [
        *[(f"floor, {name}", seconds) for name, seconds in result.floors.items()],
        ("`audit verify`, one process (`--workers 1`)", result.verify_alone_seconds),
        (f"`audit verify`, one process per core ({result.cores})", result.verify_seconds),
    ]
    lines = [
        f"`audit verify` on {events:,} events (SQLite, one checkpoint; writing them took "
        f"{result.fill_seconds:,.1f} s) beside the floor: a plain pass over the same rows "
        "(sqlite3, the same canonical bytes, SHA-256, nothing else checked; every digest "
        f"is checked to be the chain's). Best of {result.repeat} runs each.",
        "",
        "| Pass | Time | Events/s |",
        "|---|--:|--:|",
        *[
            f"| {name} | {seconds:,.2f} s | {events / seconds:,.0f} |"
            for name, seconds in rows
            if seconds
        ],
        "",
    ]
    if two_cores and result.verify_seconds:
        one_core = result.floors.get("orjson", 0.0) / result.verify_alone_seconds
        lines += [
            f"`audit verify` runs at {two_cores / result.verify_seconds:.2f}× the two-core "
            f"floor (goal ≥ 0.8×); with one process, at {one_core:.2f}× the one-core orjson "
            "floor.",
            "",
        ]
    return lines
