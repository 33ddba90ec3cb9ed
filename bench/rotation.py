"""Root key rotation over 100,000 data keys while the API is under load.

The question (issue 7): does ``hippocrate keys rotate``, run beside a serving app,
fail any request, and what does it do to latency? The app runs in its own process
(uvicorn, ``bench.server:create_app``, the real app); concurrent clients read a
consultation's messages as a practitioner, and sign in as a patient then open their
own record. The same load runs for ``PHASE_SECONDS`` before the rotation, then again
while the real command (``hippocrate keys rotate``, a third process) rewraps every data
key under a new root key version. The app's key cache is off
(``HIPPOCRATE_KEY_CACHE_TTL=0``): every request unwraps its data keys with the root key
version the database names at that instant, so each one meets the rotation, instead of
being served from keys unwrapped before it began.

The 100,000 data keys are made in bulk: each wrapped by the vault's own
``new_data_key`` (root key version 1, bound to its owner and version, exactly as the
keyring stores them), then inserted as ``data_keys`` rows with one multi-row INSERT per
5,000. They belong to no patient: making 100,000 patients through the services would
take many minutes and seal fields the rotation never touches (it rewraps keys, not
data). This raw write is the benchmark's only access around the services, and it reads
nothing.

Deployments, each skipped (and said so) when its services are not there: SQLite (the
embedded default, guard in the database) and PostgreSQL with Redis.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy import func, insert, select

from bench import api
from hippocrate.audit.recorder import Actor
from hippocrate.config import Settings
from hippocrate.db.engine import make_engine
from hippocrate.identity import service as identity
from hippocrate.keyring.models import DataKeyRecord, KeyState
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault import Vault
from hippocrate.vault.factory import open_provider
from hippocrate.work import unit_of_work

DATA_KEYS = 100_000
CHUNK = 5_000
READERS = 4  # clients reading a consultation's messages (practitioners)
SIGNERS = 2  # clients signing in as a patient, then opening their record
PHASE_SECONDS = 20.0
BATCH = 500  # the rotation's default batch size
HIPPOCRATE = Path(sys.executable).parent / "hippocrate"

#: The benchmark seeds as the platform does (recorded, guarded): the store opens
#: nothing sealed outside a unit of work.
SEEDER = Actor(role="operator", purpose=Purpose.DEMO_SEED)


@dataclass(frozen=True)
class Sample:
    at: float  # perf_counter when the request was sent
    seconds: float
    ok: bool
    kind: str


@dataclass
class Phase:
    name: str
    seconds: float
    samples: list[Sample]

    @property
    def failed(self) -> int:
        return sum(1 for s in self.samples if not s.ok)

    def percentile(self, p: float, kind: str | None = None) -> float:
        ordered = sorted(s.seconds for s in self.samples if kind is None or s.kind == kind)
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]

    def count(self, kind: str | None = None) -> int:
        return sum(1 for s in self.samples if kind is None or s.kind == kind)


@dataclass
class RotationRun:
    deployment: str
    data_keys: int
    insert_seconds: float
    rotation_seconds: float
    rewrapped: int
    phases: list[Phase]
    left_under_old: int
    load_average: float  # of the machine (1 min) when the load started: it is shared


@dataclass
class RotationResult:
    runs: list[RotationRun] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


# -- data ------------------------------------------------------------------------------


def _bulk_data_keys(settings: Settings, count: int) -> float:
    """``count`` data keys under root key version 1, inserted in bulk; seconds taken."""
    vault = Vault(open_provider(settings), cache_size=0)
    engine = make_engine(settings.resolved_database_url)
    started = time.perf_counter()
    try:
        for first in range(0, count, CHUNK):
            rows = []
            for _ in range(min(CHUNK, count - first)):
                wrapped, _key = vault.new_data_key(uuid.uuid4(), 1)
                rows.append(
                    {
                        "owner_id": wrapped.owner,
                        "version": 1,
                        "root_version": wrapped.root_version,
                        "wrapped": wrapped.blob,
                        "state": KeyState.ACTIVE,
                        "created_at": datetime.now(UTC),
                    }
                )
            with engine.begin() as connection:
                connection.execute(insert(DataKeyRecord), rows)
    finally:
        engine.dispose()
        vault.close()
    return time.perf_counter() - started


def _patients_who_sign_in(settings: Settings, count: int) -> list[api.Login]:
    """Patient accounts without a second factor: they sign in with a password alone,
    as often as the load asks (a TOTP code is good once per 30 s step)."""
    runtime = Runtime.open(settings)
    generator = SyntheticPatients(7)
    made = []
    try:
        for _ in range(count):
            data = generator.patient(with_nir=True)
            password, _secret = api._secrets()
            with unit_of_work(runtime, SEEDER) as session:
                account = identity.create_patient_account(
                    session=session, data=data, password=password, now=datetime.now(UTC)
                )
            made.append(api.Login(data.email, password, "", account.id))
    finally:
        runtime.close()
    return made


def _under(settings: Settings) -> dict[int, int]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(DataKeyRecord.root_version, func.count()).group_by(
                    DataKeyRecord.root_version
                )
            ).all()
    finally:
        engine.dispose()
    return {int(v): int(n) for v, n in rows}


# -- load ------------------------------------------------------------------------------


def _reader(base: str, seat: api.Seat) -> Callable[[], tuple[bool, str]]:
    http = httpx.Client(base_url=base, timeout=60)
    headers = api._sign_in(http, seat.practitioner)

    def read() -> tuple[bool, str]:
        response = http.get(
            f"/api/v1/consultations/{seat.read_id}/messages",
            params={"limit": api.MESSAGES},
            headers=headers,
        )
        ok = response.status_code == 200 and len(response.json()["items"]) == api.MESSAGES
        return ok, "read"

    return read


def _signer(base: str, login: api.Login) -> Callable[[], tuple[bool, str]]:
    http = httpx.Client(base_url=base, timeout=60)
    turn = [0]

    def sign_in_or_open() -> tuple[bool, str]:
        # Alternately: sign in (the email is opened to confirm the account), and open
        # the record with the session just made.
        turn[0] += 1
        if turn[0] % 2:
            response = http.post(
                "/api/v1/auth/login", json={"email": login.email, "password": login.password}
            )
            ok = response.status_code == 200 and "token" in response.json()
            if ok:
                http.headers["Authorization"] = f"Bearer {response.json()['token']}"
            return ok, "sign-in"
        response = http.get("/api/v1/patients/me")
        return response.status_code == 200 and response.json()["email"] == login.email, "record"

    return sign_in_or_open


def _load(clients: list[Callable[[], tuple[bool, str]]], until: Callable[[], bool]) -> Phase:
    """Every client in its own thread, back to back, until ``until()`` is true."""
    samples: list[Sample] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients) + 1)

    def work(send: Callable[[], tuple[bool, str]]) -> None:
        mine = []
        start.wait()
        while not until():
            began = time.perf_counter()
            try:
                ok, kind = send()
            except httpx.HTTPError:
                ok, kind = False, "error"
            mine.append(Sample(began, time.perf_counter() - began, ok, kind))
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return Phase("", time.perf_counter() - began, samples)


def _rotate(settings: Settings, log: Path) -> tuple[float, int, str]:
    """``hippocrate keys rotate`` in a process of its own: (seconds, rewrapped, output)."""
    started = time.perf_counter()
    with log.open("ab") as err:
        done = subprocess.run(
            [str(HIPPOCRATE), "keys", "rotate", "--batch-size", str(BATCH)],
            env=api._server_env(settings),
            stdout=subprocess.PIPE,
            stderr=err,
            check=False,
            timeout=3600,
        )
    seconds = time.perf_counter() - started
    output = done.stdout.decode("utf-8", errors="replace").strip()
    if done.returncode != 0:
        raise RuntimeError(f"keys rotate failed ({done.returncode}): {output}\n{api._tail(log)}")
    rewrapped = int(output.split(":")[-1].split()[0]) if "rewrapped" in output else 0
    return seconds, rewrapped, output


def _run_one(name: str, settings: Settings, log: Path) -> RotationRun:
    print(f"rotation: {name}: seeding…", file=sys.stderr, flush=True)
    api._init(settings)
    seats = api._seed(settings, seats=READERS)
    signers = _patients_who_sign_in(settings, SIGNERS)
    insert_seconds = _bulk_data_keys(settings, DATA_KEYS)
    total = sum(_under(settings).values())
    print(f"rotation: {name}: {total} data keys; serving…", file=sys.stderr, flush=True)
    with _server(settings, log) as base:
        clients = [_reader(base, seat) for seat in seats]
        clients += [_signer(base, login) for login in signers]
        api._wait_for_quiet()
        load_average = os.getloadavg()[0]
        deadline = time.monotonic() + PHASE_SECONDS
        before = _load(clients, lambda: time.monotonic() > deadline)
        before.name = "before the rotation"

        rotated: list[tuple[float, int, str]] = []
        errors: list[Exception] = []

        def rotate() -> None:
            try:
                rotated.append(_rotate(settings, log))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                errors.append(exc)

        rotation = threading.Thread(target=rotate)
        rotation.start()
        during = _load(clients, lambda: not rotation.is_alive())
        during.name = "during the rotation"
        rotation.join()
        if errors:
            raise RuntimeError(f"rotation failed: {errors[0]}")
        [(seconds, rewrapped, _output)] = rotated
        deadline = time.monotonic() + PHASE_SECONDS / 4
        after = _load(clients, lambda: time.monotonic() > deadline)
        after.name = "after the rotation"
    under = _under(settings)
    return RotationRun(
        deployment=name,
        data_keys=total,
        insert_seconds=insert_seconds,
        rotation_seconds=seconds,
        rewrapped=rewrapped,
        phases=[before, during, after],
        left_under_old=sum(n for v, n in under.items() if v != max(under)),
        load_average=load_average,
    )


#: The app unwraps data keys on every request: each one meets the rotation.
SERVER_ENV = {"HIPPOCRATE_KEY_CACHE_TTL": "0", "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}


def _server(settings: Settings, log: Path) -> contextlib.AbstractContextManager[str]:
    """The benchmark's server (``bench.api._server``), one worker, key cache off."""
    return api._server(settings, 1, log, SERVER_ENV)


def run(*, postgres: bool = True) -> RotationResult:
    result = RotationResult()
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-rotation-") as folder:
        root = Path(folder)
        log = root / "server.log"
        settings = api._settings(root / "sqlite", f"sqlite:///{root / 'sqlite' / 'bench.db'}", None)
        result.runs.append(_run_one("SQLite, guard in the database", settings, log))
        if not postgres:
            return result
        try:
            api._postgres_version()
            api._redis_version()
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped.append(
                ("PostgreSQL, guard in Redis", f"not reachable ({type(exc).__name__})")
            )
            return result
        with api._postgres_database() as url:
            settings = api._settings(root / "postgresql", url, api.REDIS_URL)
            result.runs.append(_run_one("PostgreSQL, guard in Redis", settings, log))
    return result


# -- report ----------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 1e3:,.1f}"


def report(result: RotationResult) -> str:
    """The "Root key rotation under load" section, in Markdown."""
    lines = [
        "## Root key rotation under load",
        "",
        f"{DATA_KEYS:,} data keys under root key version 1 (plus the seeded patients'), "
        f"then `hippocrate keys rotate --batch-size {BATCH}` in its own process while the "
        f"app (one uvicorn worker, its own process, key cache off) serves {READERS} "
        f"clients reading a consultation's {api.MESSAGES} messages as a practitioner and "
        f"{SIGNERS} clients signing in as a patient (password, no second factor) then "
        f"opening their record, back to back. {PHASE_SECONDS:.0f} s of load before the "
        "rotation, the whole rotation, then a quarter of that after it. A request fails "
        "when its status or its content is not the expected one.",
        "",
        "| Deployment | Phase | Requests | Failed | p50 (ms) | p99 (ms) "
        "| p99 read (ms) | p99 sign-in (ms) | p99 record (ms) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        for phase in run_.phases:
            lines.append(
                f"| {run_.deployment} | {phase.name} ({phase.seconds:.0f} s) "
                f"| {phase.count():,} | {phase.failed} | {_ms(phase.percentile(50))} "
                f"| {_ms(phase.percentile(99))} | {_ms(phase.percentile(99, 'read'))} "
                f"| {_ms(phase.percentile(99, 'sign-in'))} "
                f"| {_ms(phase.percentile(99, 'record'))} |"
            )
    lines += [
        "",
        "| Deployment | Data keys | Bulk insert (s) | Rotation (s) | Rewrapped "
        "| Rewraps per second | Left under an older version | Machine load (1 min) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        lines.append(
            f"| {run_.deployment} | {run_.data_keys:,} | {run_.insert_seconds:.1f} "
            f"| {run_.rotation_seconds:.1f} | {run_.rewrapped:,} "
            f"| {run_.rewrapped / run_.rotation_seconds:,.0f} | {run_.left_under_old} "
            f"| {run_.load_average:.1f} |"
        )
    lines.append("")
    for name, reason in result.skipped:
        lines.append(f"Not run: {name}: {reason}.")
    return "\n".join(lines) + "\n"
