"""API under load: reading a consultation's 20 messages, posting a message, listing
consultations, against the real app served by uvicorn in another process.

The data are made in this process through the real services before the server starts;
the clients sign in through the API (password, then a TOTP code from pyotp). The server
is ``bench.server:create_app``, the real app with time accumulators around the vault,
the access policy, the audit append and the guard, read back from ``/bench/stats``
after each scenario: their shares of request time come from the same run as the
throughput and latency figures.

Deployments, each skipped (and said so) when its services are not there:

- SQLite, one worker, guard state in the database: the embedded default;
- PostgreSQL (a database created for the run and dropped after), guard state in Redis,
  one worker, then two: the scale-out path.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyotp
import redis

from hippocrate.access.principal import Principal
from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.consultations import service as consultations
from hippocrate.consultations.schemas import ConsultationCreate
from hippocrate.db.engine import make_engine
from hippocrate.db.migrate import upgrade
from hippocrate.identity import factors
from hippocrate.identity import service as identity
from hippocrate.identity.models import Role
from hippocrate.patients.service import create_patient
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault.factory import initialise_provider
from hippocrate.work import unit_of_work

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/15"

CLIENTS = 8  # concurrent clients, each with its own practitioner and patient
REQUESTS = 400  # timed requests per scenario
WARMUP = 10  # untimed requests per client before each scenario
MESSAGES = 20  # messages in the consultation read
LISTED = 20  # consultations each practitioner lists (one page), 20 patients
SPECIALTY = "general-practice"
QUESTIONNAIRE = {
    "symptoms_duration": "4_to_7_days",
    "current_treatments": "aucun",
    "allergies": "aucune",
    "pregnancy": "not_applicable",
}
SCENARIOS = ("read", "list", "post")

#: The benchmark seeds as the platform does (recorded, guarded): the store opens
#: nothing sealed outside a unit of work.
SEEDER = Actor(role="operator", purpose=Purpose.DEMO_SEED)


@dataclass(frozen=True)
class Deployment:
    name: str
    database: str  # "sqlite" or "postgresql"
    workers: int


# The guard's state is in the database with SQLite (the embedded default), in Redis with
# PostgreSQL.
DEPLOYMENTS = (
    Deployment("SQLite, 1 worker, guard in the database", "sqlite", 1),
    Deployment("PostgreSQL, 1 worker, guard in Redis", "postgresql", 1),
    Deployment("PostgreSQL, 2 workers, guard in Redis", "postgresql", 2),
)


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    totp_secret: str
    account_id: uuid.UUID


@dataclass(frozen=True)
class Seat:
    """What one client uses: a practitioner, their patient, and two consultations of
    that patient taken by that practitioner (one of ``MESSAGES`` messages to read, one
    to write in). The practitioner has also taken one consultation from each of
    ``LISTED - 2`` other patients: their list is one page of ``LISTED``, from
    ``LISTED - 1`` patients (the guard's default breadth limit for a practitioner is
    20 patients an hour: the benchmark stays under it, thresholds are left as they are)."""

    practitioner: Login
    patient: Login
    read_id: uuid.UUID
    post_id: uuid.UUID


@dataclass
class Scenario:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    failures: int
    client_cpu: float
    machine_cpu: CpuSample | None
    server: dict[str, Any]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Nearest rank: the smallest latency at or above ``p`` % of them."""
        ordered = sorted(self.latencies)
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]

    def share(self, category: str, within: str | None = None) -> float:
        """Share of server request time spent in ``category`` (only the part of it
        spent inside ``within``, if given)."""
        if within is None:
            seconds = self.server["seconds"].get(category, 0.0)
        else:
            seconds = self.server["overlap"].get(category, {}).get(within, 0.0)
        return float(seconds) / self.server["request_seconds"]

    def cpu_share(self, category: str) -> float:
        """Share of the server processes' CPU time spent in ``category``."""
        return float(self.server["cpu"].get(category, 0.0)) / self.server["cpu_seconds"]

    def cores(self) -> dict[str, float | None]:
        """Cores kept busy over the timed requests, by whom."""
        app = self.server["cpu_seconds"] / self.seconds
        client = self.client_cpu / self.seconds
        if self.machine_cpu is None:
            return {"app": app, "client": client, "services": None, "other": None}
        # Processes that ended within the window take their time with them: not below 0.
        services = max(0.0, self.machine_cpu.services / self.seconds)
        other = self.machine_cpu.machine / self.seconds - app - client - services
        return {"app": app, "client": client, "services": services, "other": max(0.0, other)}

    def calls_per_request(self, category: str) -> float:
        return self.server["calls"].get(category, 0) / self.server["requests"]


@dataclass
class Run:
    deployment: Deployment
    scenarios: list[Scenario]
    seconds: float


@dataclass
class ApiResult:
    runs: list[Run] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    seed_seconds: dict[str, float] = field(default_factory=dict)


# -- data ------------------------------------------------------------------------------


def _settings(data_dir: Path, database_url: str, redis_url: str | None) -> Settings:
    """Everything named, so no HIPPOCRATE_ variable of the caller leaks in."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        key_provider=KeyProviderKind.FILE,
        key_file=None,
        smtp_host=None,
        redis_url=redis_url,
    )


def _server_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env.update(
        HIPPOCRATE_DATA_DIR=str(settings.data_dir),
        HIPPOCRATE_DATABASE_URL=settings.resolved_database_url,
        HIPPOCRATE_KEY_PROVIDER="file",
    )
    if settings.redis_url:
        env["HIPPOCRATE_REDIS_URL"] = settings.redis_url
    return env


def _init(settings: Settings) -> None:
    """What ``hippocrate init`` does: root keys, then the schema."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    initialise_provider(settings).close()
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _open_and_take(
    *, session: Any, settings: Settings, patient: Principal, practitioner: Principal, n: int
) -> uuid.UUID:
    """The patient opens a consultation and the practitioner takes it from the queue
    (the only one waiting, so theirs)."""
    blobs = FileBlobStore(settings.blob_dir)
    data = ConsultationCreate(
        specialty=SPECIALTY,
        subject=f"Toux persistante depuis dix jours ({n})",
        description="Toux sèche, surtout la nuit, sans fièvre. Pas de traitement en cours.",
        questionnaire=QUESTIONNAIRE,
    )
    opened = consultations.open_consultation(
        session=session,
        settings=settings,
        blobs=blobs,
        principal=patient,
        data=data,
        now=datetime.now(UTC),
    )
    session.flush()
    taken = consultations.take_next(
        session=session, principal=practitioner, now=datetime.now(UTC), settings=None
    )
    assert taken.id == opened.id
    return opened.id


def _seat(session: Any, settings: Settings, generator: SyntheticPatients, index: int) -> Seat:
    """One client's accounts and consultations, made through the services."""
    now = datetime.now(UTC)
    email, password, secret = f"praticien.{index}.{uuid.uuid4().hex[:8]}@example.org", *_secrets()
    account, practitioner = identity.create_practitioner(
        session=session,
        email=email,
        rpps=f"{secrets.randbelow(10**11):011d}",
        specialty=SPECIALTY,
        given_names="Camille",
        family_name="Durand",
        password=password,
        totp_secret=secret,
        now=now,
    )
    staff = Login(email, password, secret, account.id)
    data = generator.patient(with_nir=True)
    password, secret = _secrets()
    patient_account = identity.create_patient_account(
        session=session, data=data, password=password, totp_secret=secret, now=now
    )
    patient = Login(data.email, password, secret, patient_account.id)
    assert patient_account.patient_id is not None
    pair = {
        "patient": Principal(
            account_id=patient_account.id,
            role=Role.PATIENT,
            patient_id=patient_account.patient_id,
        ),
        "practitioner": Principal(
            account_id=account.id,
            role=Role.PRACTITIONER,
            practitioner_id=practitioner.id,
            specialty=SPECIALTY,
        ),
    }
    read_id = _open_and_take(session=session, settings=settings, n=0, **pair)
    for n in range(MESSAGES):
        author = pair["patient" if n % 2 == 0 else "practitioner"]
        consultations.post_message(
            session=session,
            settings=settings,
            blobs=FileBlobStore(settings.blob_dir),
            principal=author,
            consultation=consultations.get_consultation(
                session=session, principal=author, consultation_id=read_id, now=datetime.now(UTC)
            ),
            body=f"Message {n + 1} : la toux est moins forte le matin, "
            "toujours présente le soir après le repas.",
            now=datetime.now(UTC),
        )
    post_id = _open_and_take(session=session, settings=settings, n=1, **pair)
    for n in range(2, LISTED):
        other = create_patient(session=session, data=generator.patient(with_nir=True))
        _open_and_take(
            session=session,
            settings=settings,
            patient=Principal(account_id=uuid.uuid4(), role=Role.PATIENT, patient_id=other.id),
            practitioner=pair["practitioner"],
            n=n,
        )
    return Seat(staff, patient, read_id, post_id)


def _secrets() -> tuple[str, str]:
    """A password the policy accepts and a TOTP secret."""
    return f"bench-{secrets.token_urlsafe(18)}", factors.new_secret()


def _seed(settings: Settings, *, seats: int, seed: int = 2024) -> list[Seat]:
    runtime = Runtime.open(settings)
    generator = SyntheticPatients(seed)
    try:
        made = []
        for index in range(seats):
            with unit_of_work(runtime, SEEDER) as session:
                made.append(_seat(session, settings, generator, index))
        return made
    finally:
        runtime.close()


# -- the server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _server(
    settings: Settings, workers: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``uvicorn --factory bench.server:create_app`` on a loopback port; stopped on exit.
    ``env`` adds to (or overrides) the settings' environment."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "bench.server:create_app",
        "--app-dir",
        str(ROOT),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]
    base = f"http://127.0.0.1:{port}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**_server_env(settings), **(env or {})},
            stdout=output,
            stderr=output,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server stopped at start:\n{_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within 60 s:\n{_tail(log)}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:])


def _every_worker(base: str, method: str, path: str, workers: int) -> list[dict[str, Any]]:
    """Ask each worker process: a new connection per try until every pid answered."""
    answers: dict[int, dict[str, Any]] = {}
    for _ in range(400):
        with httpx.Client(base_url=base, timeout=10) as client:
            response = client.request(method, path, headers={"Connection": "close"})
            response.raise_for_status()
            answer = response.json()
        answers[answer["pid"]] = answer
        if len(answers) == workers:
            return list(answers.values())
    raise RuntimeError(f"only {len(answers)} of {workers} workers answered {path}")


def _server_stats(base: str, workers: int) -> dict[str, Any]:
    total: dict[str, Any] = {
        "requests": 0,
        "request_seconds": 0.0,
        "cpu_seconds": 0.0,
        "seconds": {},
        "cpu": {},
        "calls": {},
        "overlap": {},
    }
    for answer in _every_worker(base, "GET", "/bench/stats", workers):
        for key in ("requests", "request_seconds", "cpu_seconds"):
            total[key] += answer[key]
        for key in ("seconds", "cpu", "calls"):
            for category, value in answer[key].items():
                total[key][category] = total[key].get(category, 0) + value
        for outer, inner in answer["overlap"].items():
            into = total["overlap"].setdefault(outer, {})
            for category, value in inner.items():
                into[category] = into.get(category, 0.0) + value
    return total


# -- clients ---------------------------------------------------------------------------

_totp_lock = threading.Lock()
_last_step: dict[str, int] = {}


def _totp(secret: str) -> str:
    """A code the app accepts once: a step later than any given before for ``secret``
    (the current one, or the next, which the app's drift allows; else wait)."""
    while True:
        with _totp_lock:
            current = int(time.time() // factors.STEP_SECONDS)
            last = _last_step.get(secret, -1)
            for step in (current, current + 1):
                if step > last:
                    _last_step[secret] = step
                    return pyotp.TOTP(secret).generate_otp(step)
        time.sleep(factors.STEP_SECONDS - time.time() % factors.STEP_SECONDS + 0.05)


def _sign_in(client: httpx.Client, login: Login) -> dict[str, str]:
    """Password, then the second factor, through the API."""
    response = client.post(
        "/api/v1/auth/login", json={"email": login.email, "password": login.password}
    )
    response.raise_for_status()
    body = response.json()
    if body.get("mfa_required"):
        response = client.post(
            "/api/v1/auth/mfa",
            json={"code": _totp(login.totp_secret)},
            headers={"Authorization": f"Bearer {body['token']}"},
        )
        response.raise_for_status()
        body = response.json()
    return {"Authorization": f"Bearer {body['token']}"}


@dataclass
class Client:
    http: httpx.Client
    seat: Seat
    practitioner: dict[str, str]
    patient: dict[str, str]


Request = Callable[[Client, int], httpx.Response]

REQUESTS_OF: dict[str, Request] = {
    # The practitioner reads the 20 messages of their patient's consultation (one page).
    "read": lambda c, _n: c.http.get(
        f"/api/v1/consultations/{c.seat.read_id}/messages",
        params={"limit": MESSAGES},
        headers=c.practitioner,
    ),
    # The practitioner lists their consultations: one page of 20, 20 patients.
    "list": lambda c, _n: c.http.get(
        "/api/v1/consultations", params={"limit": LISTED}, headers=c.practitioner
    ),
    # The patient writes in their other consultation (no email: the practitioner's
    # messages would also send one).
    "post": lambda c, n: c.http.post(
        f"/api/v1/consultations/{c.seat.post_id}/messages",
        json={"body": f"Réponse {n} : la toux a diminué depuis hier, merci."},
        headers=c.patient,
    ),
}


def _expected_items(scenario: str, response: httpx.Response) -> bool:
    if scenario == "post":
        return response.status_code == 201
    if response.status_code != 200:
        return False
    return len(response.json()["items"]) == (MESSAGES if scenario == "read" else LISTED)


SERVICES = ("postgres", "redis-server")  # process names counted as the database's CPU


@dataclass(frozen=True)
class CpuSample:
    """Seconds of CPU used so far: the whole machine, and the database and Redis."""

    machine: float
    services: float


def _cpu_sample() -> CpuSample | None:
    """Read from /proc (Linux); None elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
    services = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # the process ended
        name, _, rest = text.partition("(")[2].rpartition(")")
        if name in SERVICES:
            values = rest.split()
            services += int(values[11]) + int(values[12])  # utime, stime
    return CpuSample((user + nice + system + irq + softirq + steal) / tick, services / tick)


def _wait_for_quiet(*, busy_below: float = 0.25, at_most: float = 10.0) -> None:
    """Wait (a bounded time) until the machine is nearly idle: it is shared, and other
    work would be measured too. The report shows how much there was anyway."""
    deadline = time.monotonic() + at_most
    while time.monotonic() < deadline:
        before = _cpu_sample()
        time.sleep(0.5)
        spent = _cpu_between(before, _cpu_sample())
        if spent is None or spent.machine / 0.5 < busy_below:
            return
    print("api: the machine stayed busy; measuring anyway", file=sys.stderr, flush=True)


def _cpu_between(before: CpuSample | None, after: CpuSample | None) -> CpuSample | None:
    if before is None or after is None:
        return None
    return CpuSample(after.machine - before.machine, after.services - before.services)


def _scenario(base: str, clients: list[Client], name: str, workers: int) -> Scenario:
    send = REQUESTS_OF[name]
    with ThreadPoolExecutor(len(clients)) as pool:
        warm = pool.map(lambda c: [send(c, -n).status_code for n in range(WARMUP)], clients)
        bad = [s for codes in warm for s in codes if s >= 300]
        if bad:
            raise RuntimeError(f"{name}: warm-up refused ({sorted(set(bad))})")
        _wait_for_quiet()
        _every_worker(base, "POST", "/bench/reset", workers)

        tickets = itertools.count()
        ticket_lock = threading.Lock()
        start = threading.Barrier(len(clients) + 1)

        def work(client: Client) -> tuple[list[float], int]:
            latencies, failures = [], 0
            start.wait()
            while True:
                with ticket_lock:
                    n = next(tickets)
                if n >= REQUESTS:
                    return latencies, failures
                began = time.perf_counter()
                response = send(client, n)
                latencies.append(time.perf_counter() - began)
                if not _expected_items(name, response):
                    failures += 1

        futures = [pool.submit(work, c) for c in clients]
        start.wait()
        began, cpu, machine = time.perf_counter(), time.process_time(), _cpu_sample()
        outcomes = [f.result() for f in futures]
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        machine_cpu = _cpu_between(machine, _cpu_sample())
    server = _server_stats(base, workers)
    if server["requests"] != REQUESTS:
        raise RuntimeError(f"{name}: the server counted {server['requests']} requests")
    return Scenario(
        name=name,
        requests=REQUESTS,
        seconds=seconds,
        latencies=[lat for latencies, _ in outcomes for lat in latencies],
        failures=sum(failures for _, failures in outcomes),
        client_cpu=cpu,
        machine_cpu=machine_cpu,
        server=server,
    )


def _load(base: str, seats: list[Seat], workers: int) -> list[Scenario]:
    https = [httpx.Client(base_url=base, timeout=60) for _ in seats]
    try:
        clients = [
            Client(http, seat, _sign_in(http, seat.practitioner), _sign_in(http, seat.patient))
            for http, seat in zip(https, seats, strict=True)
        ]
        return [_scenario(base, clients, name, workers) for name in SCENARIOS]
    finally:
        for http in https:
            http.close()


# -- databases -------------------------------------------------------------------------


def _postgres_version() -> str:
    """The server's version; raises ``psycopg.Error`` when it cannot be reached."""
    with psycopg.connect(f"{POSTGRES_URL}/postgres", connect_timeout=3) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def _redis_version() -> str:
    """The server's version; raises ``redis.RedisError`` when it cannot be reached."""
    info = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).info("server")
    return str(info.get("redis_version", "?"))


def _package(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    name = f"hippocrate_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _forget_guard_state(settings: Settings, seats: list[Seat]) -> None:
    runtime = Runtime.open(settings)  # the deployment's own keys in Redis
    try:
        assert runtime.guard is not None
        for seat in seats:
            runtime.guard.state.release(seat.practitioner.account_id)
            runtime.guard.state.release(seat.patient.account_id)
    finally:
        runtime.close()


def run() -> ApiResult:
    result = ApiResult()
    result.software = [
        f"uvicorn {_package('uvicorn')}",
        f"FastAPI {_package('fastapi')}",
        f"httpx {_package('httpx')} (client)",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-api-") as folder:
        root = Path(folder)
        log = root / "server.log"

        sqlite = [d for d in DEPLOYMENTS if d.database == "sqlite"]
        settings = _settings(root / "sqlite", f"sqlite:///{root / 'sqlite' / 'bench.db'}", None)
        _init(settings)
        started = time.perf_counter()
        seats = _seed(settings, seats=CLIENTS)
        result.seed_seconds["SQLite"] = time.perf_counter() - started
        for deployment in sqlite:
            result.runs.append(_run_one(deployment, settings, seats, log))

        postgres = [d for d in DEPLOYMENTS if d.database == "postgresql"]
        try:
            versions = [f"PostgreSQL {_postgres_version()}", f"Redis {_redis_version()}"]
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped += [(d.name, f"not reachable ({type(exc).__name__})") for d in postgres]
            return result
        result.software += [*versions, f"psycopg {_package('psycopg')}"]
        with _postgres_database() as url:
            settings = _settings(root / "postgresql", url, REDIS_URL)
            _init(settings)
            started = time.perf_counter()
            seats = _seed(settings, seats=CLIENTS)
            result.seed_seconds["PostgreSQL"] = time.perf_counter() - started
            try:
                for deployment in postgres:
                    result.runs.append(_run_one(deployment, settings, seats, log))
            finally:
                _forget_guard_state(settings, seats)
    return result


def _run_one(deployment: Deployment, settings: Settings, seats: list[Seat], log: Path) -> Run:
    started = time.perf_counter()
    print(f"api: {deployment.name}…", file=sys.stderr, flush=True)
    with _server(settings, deployment.workers, log) as base:
        scenarios = _load(base, seats, deployment.workers)
    return Run(deployment, scenarios, time.perf_counter() - started)


# -- report ----------------------------------------------------------------------------

_LABELS = {
    "read": f"read a consultation ({MESSAGES} messages)",
    "list": f"list consultations ({LISTED})",
    "post": "post a message",
}


def _pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def report(result: ApiResult) -> str:
    """The "API under load" section, in Markdown."""
    lines = [
        "## API under load",
        "",
        f"Software: {'; '.join(result.software)}.",
        "",
        f"{CLIENTS} concurrent clients (threads, one keep-alive httpx connection each) on "
        "loopback, each with its own practitioner and patient, signed in through the API "
        f"(password then TOTP). Per scenario: {WARMUP} untimed requests per client, then "
        f"{REQUESTS} timed requests. CPU: cores kept busy over the timed requests, of "
        f"{os.cpu_count()}, by the app's processes, this load generator, PostgreSQL and "
        "Redis together, and everything else on the machine (other people's work: the "
        "machine is shared).",
        "",
        "| Deployment | Scenario | Throughput (req/s) | p50 (ms) | p99 (ms) | Failed "
        "| CPU: app | client | PostgreSQL + Redis | other |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        for s in run_.scenarios:
            cores = " | ".join("—" if v is None else f"{v:.2f}" for v in s.cores().values())
            lines.append(
                f"| {run_.deployment.name} | {_LABELS[s.name]} | {s.throughput:,.0f} "
                f"| {s.percentile(50) * 1e3:,.1f} | {s.percentile(99) * 1e3:,.1f} "
                f"| {s.failures} | {cores} |"
            )
    lines += [
        "",
        "Where request time goes: share of the app's request time (wall clock, summed over "
        'the timed requests) spent in each part; "of which DB" is the part of it spent '
        "in database statements, waiting for a lock included; the last column is every "
        "statement of the request.",
        "",
        "| Deployment | Scenario | Vault | Policy | of which DB | Audit append "
        "| of which DB | Guard | of which DB | All DB statements |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        for s in run_.scenarios:
            lines.append(
                f"| {run_.deployment.name} | {_LABELS[s.name]} | {_pct(s.share('vault'))} "
                f"| {_pct(s.share('policy'))} | {_pct(s.share('policy', 'db'))} "
                f"| {_pct(s.share('audit.append'))} | {_pct(s.share('audit.append', 'db'))} "
                f"| {_pct(s.share('guard'))} | {_pct(s.share('guard', 'db'))} "
                f"| {_pct(s.share('db'))} |"
            )
    lines += [
        "",
        "Where the app's CPU goes: share of its processes' CPU time spent in each part "
        "(each thread's CPU time inside the part; `get_readable` is the policy function "
        "that runs the scoped query through the ORM).",
        "",
        "| Deployment | Scenario | Vault | Policy | of which get_readable "
        "| Audit append | Guard | DB statements (driver side) |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        for s in run_.scenarios:
            lines.append(
                f"| {run_.deployment.name} | {_LABELS[s.name]} "
                f"| {_pct(s.cpu_share('vault'))} | {_pct(s.cpu_share('policy'))} "
                f"| {_pct(s.cpu_share('policy.get_readable'))} "
                f"| {_pct(s.cpu_share('audit.append'))} | {_pct(s.cpu_share('guard'))} "
                f"| {_pct(s.cpu_share('db'))} |"
            )
    lines += [
        "",
        "Audit and guard, per request and per event, and the database statements they "
        "wait among (means; wall clock / CPU, in µs). The audit head update is the "
        "append's two `UPDATE audit_head` statements: the first waits for the row lock "
        "that every appending transaction holds until it commits.",
        "",
        "| Deployment | Scenario | Request (ms) | Audit append per request "
        "| of which head update | Guard checks per request | Guard check per event "
        "| State store call | Guard per request | DB statements per request "
        "| DB statement |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run_ in result.runs:
        for s in run_.scenarios:
            lines.append(
                f"| {run_.deployment.name} | {_LABELS[s.name]} "
                f"| {s.server['request_seconds'] / s.server['requests'] * 1e3:,.1f} "
                f"| {_wall_cpu(s, 'audit.append', per='request')} "
                f"| {_wall_cpu(s, 'db.audit_head', per='request')} "
                f"| {s.calls_per_request('guard.check_read'):.0f} "
                f"| {_wall_cpu(s, 'guard.check_read', per='call')} "
                f"| {_wall_cpu(s, 'guard.state', per='call')} "
                f"| {_wall_cpu(s, 'guard', per='request')} "
                f"| {s.calls_per_request('db'):.0f} "
                f"| {_wall_cpu(s, 'db', per='call')} |"
            )
    lines.append("")
    seeds = ", ".join(f"{k} {v:.0f} s" for k, v in result.seed_seconds.items())
    runs = ", ".join(f"{r.deployment.name} {r.seconds:.0f} s" for r in result.runs)
    lines.append(
        f"Seeding through the services: {seeds}. Each deployment (start, sign-in, "
        f"warm-up, load): {runs}."
    )
    for name, reason in result.skipped:
        lines.append(f"Not run: {name}: {reason}.")
    return "\n".join(lines) + "\n"


def _wall_cpu(s: Scenario, category: str, *, per: str) -> str:
    count = s.server["requests"] if per == "request" else s.server["calls"].get(category, 0)
    if not count:
        return "—"
    wall = s.server["seconds"].get(category, 0.0) / count * 1e6
    cpu = s.server["cpu"].get(category, 0.0) / count * 1e6
    return f"{wall:,.0f} / {cpu:,.0f}"
