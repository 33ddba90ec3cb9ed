"""Breach response costs (docs/BREACH.md), on PostgreSQL, by the platform's own code:

1. **response**: from an incident's opening to a complete dossier and every notice
   queued, for 1,000 and 100,000 affected patients (the goal: 300,000 in under ten
   minutes): a signed scope of that many patients kept, the register documented and
   assessed, the dossier built and printed, the notices launched and prepared;
2. **delivery**: notices delivered per second by the notice job to a local SMTP server
   (the relay accepts at once: the floor is the platform's own work), with one and two
   sending threads;
3. **scope**: the scope of compromised principals over a year of trail, 10,000,000
   events by default (filled with COPY, so the fill is not the figure).

Each run uses a fresh ``hippocrate_bench_<random>`` database, dropped after.
"""

from __future__ import annotations

import io
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from bench import api, importing
from hippocrate.audit.recorder import Actor
from hippocrate.breach import dossier, jobs, notices, service
from hippocrate.breach import scope as scopes
from hippocrate.breach.drill import STOLEN_SESSIONS
from hippocrate.breach.models import IncidentOrigin, Notice, NoticeStatus
from hippocrate.breach.schemas import AssessmentIn, IncidentDetails
from hippocrate.breach.scope import Exposure, Scope
from hippocrate.identity.models import Account, AccountStatus
from hippocrate.interop.importer import import_file
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from hippocrate.tags import Category, Purpose
from hippocrate.work import unit_of_work

DPO = Actor(role="dpo", account_id=uuid.UUID(int=0xD90))
IMPORTER = Actor(role="operator", purpose=Purpose.IMPORT)
APPROVER = Actor(role="operator", account_id=uuid.UUID(int=0xA99), purpose=Purpose.OPERATIONS)
CATEGORIES = frozenset({Category.IDENTITY, Category.CONTACT, Category.HEALTH})


@dataclass
class Response:
    patients: int
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.stages.values())


@dataclass
class Delivery:
    threads: int
    notices: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.notices / self.seconds if self.seconds else 0.0


@dataclass
class ScopeRun:
    events: int
    fill_seconds: float
    principals: int
    seconds: float
    patients: int


@dataclass
class BreachResult:
    responses: list[Response] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    scopes: list[ScopeRun] = field(default_factory=list)


@contextmanager
def _deployment(root: Path) -> Iterator[Runtime]:
    with api._postgres_database() as url:
        settings = api._settings(root, url, None)
        api._init(settings)
        runtime = Runtime.open(settings)
        try:
            yield runtime
        finally:
            runtime.close()


def _timed(stages: dict[str, float], name: str, work: Any) -> Any:
    started = time.perf_counter()
    result = work()
    stages[name] = time.perf_counter() - started
    return result


def response(runtime: Runtime, patients: int) -> Response:
    """Opening to a complete dossier and every notice queued, stage by stage."""
    measured = Response(patients)
    s = measured.stages
    policy = service.policy_of(runtime.settings)
    provider = runtime.sessions.vault.provider
    now = datetime.now(UTC)
    with unit_of_work(runtime, DPO) as session:
        incident = _timed(
            s,
            "open the incident",
            lambda: service.open_incident(
                session=session,
                actor=DPO,
                origin=IncidentOrigin.DPO,
                awareness_at=now,
                details=IncidentDetails(),
                now=now,
            ),
        )

        def scoped() -> Any:
            computed = Scope(
                kind="principals",
                computed_at=now,
                head_seq=0,
                head_hash="00" * 32,
                parameters={},
                patients={uuid.uuid4(): Exposure(CATEGORIES, 3) for _ in range(patients)},
                honeytokens=0,
            )
            scopes.sign(computed, provider)
            return service.record_scope(
                session=session,
                actor=DPO,
                incident=incident,
                version=incident.version,
                scope=computed,
                now=now,
            )

        kept = _timed(s, "sign and keep the scope", scoped)
        _timed(
            s,
            "document and assess",
            lambda: (
                service.amend(
                    session=session,
                    actor=DPO,
                    incident=incident,
                    version=incident.version,
                    patch={
                        "nature": {"cause": "stolen sessions"},
                        "contacts": {"dpo": {"name": "DPO", "email": "dpo@example.org"}},
                        "consequences": "targeted phishing",
                        "measures": {"taken": "contained"},
                    },
                    now=now,
                ),
                service.assess(
                    session=session,
                    actor=DPO,
                    incident=incident,
                    version=incident.version,
                    assessment=AssessmentIn.model_validate(STOLEN_SESSIONS),
                    now=now,
                    policy=policy,
                ),
            ),
        )

        def printed() -> None:
            document = dossier.build(
                incident,
                clock=service.clock_of(session, incident, now, policy),
                decision=service.current_decision(incident, policy),
                scope=kept.document,
                notifications=[],
                phase="initial",
                now=now,
            )
            dossier.pdf(document)
            dossier.html(document)

        _timed(s, "build and print the dossier", printed)
        _timed(
            s,
            "launch the notices",
            lambda: (
                notices.request(
                    session=session,
                    actor=DPO,
                    incident=incident,
                    scope=kept,
                    required=True,
                    voluntary_reason=None,
                    now=now,
                ),
                notices.approve(session=session, actor=APPROVER, incident=incident, now=now),
            ),
        )
        incident_id = incident.id
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        _timed(
            s,
            "prepare every notice (queued)",
            lambda: notices.prepare(session=session, incident_id=incident_id, now=now),
        )
    return measured


class _Relay:
    """Accepts every message at once, and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.count += 1
        return "250 OK"


def delivery(root: Path, runtime: Runtime, count: int) -> list[Delivery]:
    """Notices delivered per second to a local relay, one and two sending threads."""
    source = root / "patients.csv"
    importing.write_source(source, count, seed=2025)
    import_file(
        path=source,
        fmt="csv",
        settings=runtime.settings,
        begin=lambda: unit_of_work(runtime, IMPORTER),
        now=lambda: datetime.now(UTC),
    )
    with unit_of_work(runtime, DPO) as session:
        session.execute(update(Account).values(status=AccountStatus.ACTIVE))
        ids = list(session.scalars(select(Patient.id)))
    relay = _Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings = runtime.settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": controller.port}
    )
    sending = Runtime(settings, runtime.sessions, guard=runtime.guard)
    results = []
    try:
        for threads, part in ((1, ids[: len(ids) // 2]), (2, ids[len(ids) // 2 :])):
            batches = _launched(sending, part)
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                sent = sum(pool.map(lambda b: jobs.send_batch(sending, b), batches))
            results.append(Delivery(threads, sent, time.perf_counter() - started))
    finally:
        controller.stop()
    return results


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _launched(runtime: Runtime, patients: list[uuid.UUID]) -> list[list[uuid.UUID]]:
    """An incident whose scope is ``patients``, its notices launched and prepared."""
    now = datetime.now(UTC)
    with unit_of_work(runtime, DPO) as session:
        incident = service.open_incident(
            session=session,
            actor=DPO,
            origin=IncidentOrigin.DPO,
            awareness_at=now,
            details=IncidentDetails(),
            now=now,
        )
        computed = Scope(
            kind="principals",
            computed_at=now,
            head_seq=0,
            head_hash="00" * 32,
            parameters={},
            patients={p: Exposure(CATEGORIES, 1) for p in patients},
            honeytokens=0,
        )
        kept = service.record_scope(
            session=session,
            actor=DPO,
            incident=incident,
            version=incident.version,
            scope=scopes.sign(computed, runtime.sessions.vault.provider),
            now=now,
        )
        notices.request(
            session=session,
            actor=DPO,
            incident=incident,
            scope=kept,
            required=False,
            voluntary_reason="benchmark",
            now=now,
        )
        notices.approve(session=session, actor=APPROVER, incident=incident, now=now)
        incident_id = incident.id
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        notices.prepare(session=session, incident_id=incident_id, now=now)
    with unit_of_work(runtime, notices.NOTICE_ACTOR) as session:
        ids = list(
            session.scalars(
                select(Notice.id).where(
                    Notice.incident_id == incident_id, Notice.status == NoticeStatus.QUEUED
                )
            )
        )
    return [ids[i : i + 50] for i in range(0, len(ids), 50)]


def scope_over(runtime: Runtime, events: int) -> list[ScopeRun]:
    """Fill the trail with ``events`` reads over a year (2,000 accounts, 1,000,000
    patients), then compute the scope of 1 and of 20 compromised accounts."""
    accounts = [uuid.UUID(int=0xACC0000 + n) for n in range(2000)]
    year = datetime(2025, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    url = runtime.settings.resolved_database_url.replace("postgresql+psycopg", "postgresql")
    rng = random.Random(2025)
    with psycopg.connect(url) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY audit_events (seq, at, actor_account_id, actor_role, action, "
                "patient_id, resources, categories, purpose, outcome, request_id, prev_hash, "
                "hash) FROM STDIN"
            ) as copy:
                zero = "\\\\x" + "00" * 32
                step = 365 * 86_400 / events
                buffer = io.StringIO()
                for n in range(1, events + 1):
                    at = year + timedelta(seconds=n * step)
                    actor = accounts[rng.randrange(len(accounts))]
                    patient = uuid.UUID(int=0x9A0000000 + rng.randrange(1_000_000))
                    buffer.write(
                        f"{n}\t{at.isoformat()}\t{actor}\tpractitioner\t"
                        f"consultation:record:read\t{patient}\t"
                        f'["record:{patient}"]\t["health", "identity"]\tcare\tallowed\t'
                        f"\\N\t{zero}\t{zero}\n"
                    )
                    if n % 50_000 == 0:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            cursor.execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq",
                (events, b"\x00" * 32),
            )
            cursor.execute("ANALYZE audit_events")
        connection.commit()
    filled = time.perf_counter() - started
    runs = []
    for count in (1, 20):
        chosen = accounts[:count]
        with unit_of_work(runtime, DPO) as session:
            began = time.perf_counter()
            computed = scopes.of_principals(
                session,
                principals=chosen,
                since=year,
                until=None,
                now=datetime.now(UTC),
                is_honeytoken=lambda _p: False,
            )
            elapsed = time.perf_counter() - began
        runs.append(ScopeRun(events, filled, count, elapsed, len(computed.patients)))
    return runs


def run(
    *, sizes: tuple[int, ...] = (1000, 100_000), deliveries: int = 600, events: int = 10_000_000
) -> BreachResult:
    result = BreachResult()
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-breach-") as folder:
        root = Path(folder)
        with _deployment(root / "response") as runtime:
            for size in sizes:
                result.responses.append(response(runtime, size))
        with _deployment(root / "delivery") as runtime:
            result.deliveries = delivery(root, runtime, deliveries)
        if events:
            with _deployment(root / "scope") as runtime:
                result.scopes = scope_over(runtime, events)
    return result


def report(result: BreachResult) -> str:
    lines = ["## Breach response", ""]
    if result.responses:
        names = list(result.responses[0].stages)
        head = " | ".join(f"{r.patients:,} patients (s)" for r in result.responses)
        lines += [f"| stage | {head} |", "|---|" + "---:|" * len(result.responses)]
        for name in names:
            cells = " | ".join(f"{r.stages[name]:.2f}" for r in result.responses)
            lines.append(f"| {name} | {cells} |")
        totals = " | ".join(f"**{r.total:.2f}**" for r in result.responses)
        lines += [f"| **opening to a complete dossier and every notice queued** | {totals} |", ""]
        biggest = result.responses[-1]
        per_patient = biggest.total / biggest.patients
        lines.append(
            f"At {per_patient * 1e6:.0f} µs per affected patient ({biggest.patients:,}): "
            f"300,000 in {per_patient * 300_000:.0f} s (goal 600 s), 14,000,000 in "
            f"{per_patient * 14_000_000 / 60:.0f} min."
        )
        lines.append("")
    if result.deliveries:
        lines += ["| sending threads | notices | seconds | notices/s |", "|---:|---:|---:|---:|"]
        for d in result.deliveries:
            lines.append(f"| {d.threads} | {d.notices} | {d.seconds:.2f} | {d.per_second:.0f} |")
        best = max(d.per_second for d in result.deliveries)
        if best:
            lines.append(
                f"\nAt {best:.0f} notices/s: 300,000 in {300_000 / best / 60:.0f} min, "
                f"14,000,000 in {14_000_000 / best / 3600:.1f} h (one process)."
            )
        lines.append("")
    if result.scopes:
        lines += [
            "| trail events | compromised accounts | scope (s) | patients in it |",
            "|---:|---:|---:|---:|",
        ]
        for sc in result.scopes:
            lines.append(
                f"| {sc.events:,} | {sc.principals} | {sc.seconds:.2f} | {sc.patients:,} |"
            )
        lines.append(f"\n(filling the trail with COPY: {result.scopes[0].fill_seconds:.0f} s)")
        lines.append("")
    return "\n".join(lines) + "\n"
