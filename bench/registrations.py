"""Registrations under a burst: 100 parallel registrations, then 100 parallel 32 MiB
bodies to the sign-in route, against the real app served by uvicorn in another process
(``hippocrate.app:create_app`` with uvicorn's proxy-header middleware off, as
``hippocrate serve`` runs it; production argon2id parameters, default pools and
limits).

Each registration comes from its own client address: the bench is the app's trusted
proxy (``HIPPOCRATE_TRUSTED_PROXIES=127.0.0.1``) and names the client in
``X-Forwarded-For``, so the per-address admission limit (10 a window) is the
production one and does not answer for the burst; the overall limit (300) is not
reached by 100. What is counted: answers by status, 503s and 429s without
``Retry-After``, connection errors; the wall time and p50/p99 latency; the peak RSS of
the server's process tree (every uvicorn process, sampled from ``/proc`` every 20 ms).
A seeded patient signs in every 250 ms during the burst and once after it.

Afterwards the database is read (plain SQL over ids and statuses, nothing sealed): every
accepted registration is one pending account with its patient, data key, verification
token and one delivered email; a refused one left nothing; the outbox holds one
message per accepted address and none for a refused one. A few accepted registrations
are then completed the real way (the emailed link, then a sign-in with the password).

Deployments, the PostgreSQL ones skipped (and said so) when PostgreSQL or Redis are not
there: SQLite with the guard's state in the database (the embedded default), 1 worker
and 2 workers; PostgreSQL with the guard's state in Redis, 1 worker and 2 workers.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import selectors
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy import text

from bench.api import REDIS_URL as BENCH_REDIS
from bench.api import (
    ROOT,
    SEEDER,
    _free_port,
    _init,
    _package,
    _postgres_database,
    _postgres_version,
    _redis_version,
    _secrets,
    _server_env,
    _settings,
    _tail,
)
from hippocrate.config import Settings
from hippocrate.db.engine import make_engine
from hippocrate.identity import service as identity
from hippocrate.patients.synthetic import SyntheticPatients
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work

REGISTRATIONS = 100  # fired at once, each from its own client address
BODIES = 100  # 32 MiB bodies to the sign-in route, fired at once
BODY_BYTES = 32 * 1024 * 1024
CHUNK = 64 * 1024
VERIFIED = 3  # accepted registrations completed through the emailed link
SIGN_IN_EVERY = 0.25  # seconds between the seeded patient's sign-ins during the burst
SAMPLE_EVERY = 0.02  # seconds between two readings of the server's memory
TIMEOUT = 120.0  # seconds a client waits for an answer

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
VERIFY = "/api/v1/auth/verify-email"

#: The bench is the app's one trusted proxy; it names each client in X-Forwarded-For.
PROXIED = {
    "HIPPOCRATE_TRUSTED_PROXIES": "127.0.0.1",
    "HIPPOCRATE_PROXY_HEADER": "x-forwarded-for",
}
SEED_ADDRESS = "192.0.2.1"  # the seeded patient's own client address (TEST-NET-1)


def client_address(n: int) -> str:
    """A distinct documentation address (TEST-NET-2, then TEST-NET-3) per registration."""
    net, host = divmod(n, 254)
    return f"{('198.51.100', '203.0.113', '192.0.2')[net % 3]}.{host + 1}"


@dataclass(frozen=True)
class Deployment:
    name: str
    database: str  # "sqlite" or "postgresql"
    workers: int


DEPLOYMENTS = (
    Deployment("SQLite, guard in the database, 1 worker", "sqlite", 1),
    Deployment("SQLite, guard in the database, 2 workers", "sqlite", 2),
    Deployment("PostgreSQL, guard in Redis, 1 worker", "postgresql", 1),
    Deployment("PostgreSQL, guard in Redis, 2 workers", "postgresql", 2),
)


# -- measuring -------------------------------------------------------------------------


def _kind(status: int | None) -> str:
    if status is None:
        return "connection error"
    if 200 <= status < 300:
        return "2xx"
    if status in (413, 429, 500, 503):
        return str(status)
    return "other"


@dataclass
class Burst:
    """Answers to requests fired at once, and the server's memory around them."""

    sent: int
    kinds: Counter[str] = field(default_factory=Counter)  # _kind of each answer
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    seconds: float = 0.0  # from the release of the requests to the last answer
    no_retry_after: int = 0  # 429 or 503 without a Retry-After of at least 1 s
    rss_before: float = 0.0  # MiB, the server's process tree
    rss_peak: float = 0.0
    sent_bytes: list[int] = field(default_factory=list)  # body probes: bytes pushed
    refusals: Counter[str] = field(default_factory=Counter)  # "503: <detail>" of refusals

    def percentile(self, p: float) -> float:
        """Nearest rank, in ms."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] * 1000


@dataclass
class Checks:
    """What the database and the outbox hold after the burst."""

    accepted: int = 0  # registrations answered 2xx
    pending_accounts: int = 0
    patients: int = 0  # besides the seeded one
    emailed_accepted: int = 0  # accepted addresses with exactly one message in the outbox
    half_written: dict[str, int] = field(default_factory=dict)
    completed: int = 0  # accepted registrations verified and signed in
    tried: int = 0

    @property
    def whole(self) -> bool:
        return (
            self.pending_accounts == self.accepted
            and self.patients == self.accepted
            and self.emailed_accepted == self.accepted
            and not any(self.half_written.values())
            and self.completed == self.tried
        )


@dataclass
class Run:
    deployment: Deployment
    registrations: Burst
    sign_ins_during: Counter[str]
    sign_in_after: int | None
    checks: Checks
    declared: Burst  # Content-Length: 32 MiB
    chunked: Burst  # no declared length, 32 MiB streamed
    healthy_after: bool
    seconds: float
    load: float  # the machine's 1-minute load average when the burst was released


@dataclass
class RegistrationsResult:
    runs: list[Run] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    registrations: int = REGISTRATIONS
    bodies: int = BODIES


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's supervisor spawns its workers)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Memory:
    """The resident memory of a process tree, sampled in a thread (MiB; the sum over
    the processes, so pages they share are counted in each)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> float:
        return sum(_rss_mib(pid) for pid in _tree(self.root))

    def _sample(self) -> None:
        pids = _tree(self.root)
        last_scan = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_scan > 1:
                pids, last_scan = _tree(self.root), time.monotonic()
            self.peak = max(self.peak, sum(_rss_mib(pid) for pid in pids))
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> Memory:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


# -- the server ------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    base: str
    host: str
    port: int
    pid: int


@contextlib.contextmanager
def _serve(settings: Settings, workers: int, log: Path) -> Iterator[Served]:
    """``uvicorn --factory hippocrate.app:create_app --no-proxy-headers`` (what
    ``hippocrate serve`` runs) on a loopback port, the bench trusted as its proxy."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "hippocrate.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-proxy-headers",
        "--no-access-log",
        "--log-level",
        "warning",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]
    base = f"http://127.0.0.1:{port}"
    env = {**_server_env(settings), **PROXIED, "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
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
        yield Served(base, "127.0.0.1", port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    email: str
    password: str
    account_id: uuid.UUID


def _seed(settings: Settings) -> Seeded:
    """One active patient account, made through the services before the server starts."""
    runtime = Runtime.open(settings)
    try:
        with unit_of_work(runtime, SEEDER) as session:
            data = SyntheticPatients(2024).patient(with_nir=False)
            password, _secret = _secrets()
            account = identity.create_patient_account(
                session=session, data=data, password=password, now=datetime.now(UTC)
            )
            return Seeded(data.email, password, account.id)
    finally:
        runtime.close()


def _registrations(count: int, run: str) -> list[tuple[str, dict[str, object]]]:
    """(client address, body) of ``count`` registrations with distinct addresses."""
    generator = SyntheticPatients(7)
    made = []
    for n in range(count):
        data = generator.patient(with_nir=n % 2 == 0)
        data = data.model_copy(update={"email": f"burst.{run}.{n}@example.org"})
        body = {**data.model_dump(mode="json"), "password": _secrets()[0]}
        made.append((client_address(n), body))
    return made


# -- the burst -------------------------------------------------------------------------


def _retry_after_ok(response: httpx.Response) -> bool:
    value = response.headers.get("retry-after", "")
    return value.isdigit() and int(value) >= 1


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail") or response.json().get("title"))
    except ValueError:
        return response.text[:80] or "(no body)"


def _sign_in(http: httpx.Client, seeded: Seeded) -> int | None:
    try:
        answer = http.post(
            LOGIN,
            json={"email": seeded.email, "password": seeded.password},
            headers={"X-Forwarded-For": SEED_ADDRESS},
        )
    except httpx.HTTPError:
        return None
    return answer.status_code


def _register_burst(
    served: Served, bodies: list[tuple[str, dict[str, object]]], seeded: Seeded
) -> tuple[Burst, dict[str, int | None], Counter[str]]:
    """Fire every registration at once (one connection each, released by a barrier);
    meanwhile the seeded patient signs in. Returns the burst, each address's answer, and
    the sign-ins' kinds."""
    burst = Burst(sent=len(bodies))
    answers: dict[str, int | None] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies) + 1)
    done = threading.Event()

    def one(address: str, body: dict[str, object]) -> None:
        with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
            barrier.wait()
            started = time.perf_counter()
            try:
                response = http.post(REGISTER, json=body, headers={"X-Forwarded-For": address})
            except httpx.HTTPError as exc:
                status, elapsed, missing = None, None, False
                refusal = type(exc).__name__
            else:
                status, elapsed = response.status_code, time.perf_counter() - started
                missing = status in (429, 503) and not _retry_after_ok(response)
                refusal = None if status < 300 else f"{status}: {_detail(response)}"
        with lock:
            answers[str(body["email"])] = status
            burst.kinds[_kind(status)] += 1
            if status is not None:
                burst.statuses[status] += 1
            if elapsed is not None:
                burst.latencies.append(elapsed)
            burst.no_retry_after += missing
            if refusal is not None:
                burst.refusals[refusal] += 1

    sign_ins: Counter[str] = Counter()

    def signing_in() -> None:
        with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
            while not done.is_set():
                sign_ins[_kind(_sign_in(http, seeded))] += 1
                done.wait(SIGN_IN_EVERY)

    threads = [threading.Thread(target=one, args=pair) for pair in bodies]
    for thread in threads:
        thread.start()
    prober = threading.Thread(target=signing_in)
    with Memory(served.pid) as memory:
        burst.rss_before = memory.peak
        barrier.wait()
        started = time.perf_counter()
        prober.start()
        for thread in threads:
            thread.join()
        burst.seconds = time.perf_counter() - started
        done.set()
        prober.join()
    burst.rss_peak = memory.peak
    return burst, answers, sign_ins


# -- 32 MiB bodies ---------------------------------------------------------------------


def _body_payload(chunked: bool) -> bytes:
    prefix = b'{"email": "'
    filler = b"a" * (BODY_BYTES - len(prefix))
    if not chunked:
        return prefix + filler
    whole = prefix + filler
    framed = bytearray()
    for start in range(0, len(whole), CHUNK):
        piece = whole[start : start + CHUNK]
        framed += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(framed + b"0\r\n\r\n")


def _send_big(served: Served, payload: memoryview, chunked: bool) -> tuple[int | None, float, int]:
    """One request to the sign-in route with a 32 MiB body, pushed as fast as the server
    takes it until it answers: (status, seconds to the answer's head, bytes pushed)."""
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}"
    head = (
        f"POST {LOGIN} HTTP/1.1\r\nHost: {served.host}:{served.port}\r\n"
        f"Content-Type: application/json\r\n{length}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer, sent = b"", 0
    with socket.create_connection((served.host, served.port), timeout=TIMEOUT) as sock:
        started = time.perf_counter()
        sock.sendall(head)
        sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            writing = True
            deadline = time.monotonic() + TIMEOUT
            while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
                for _key, mask in selector.select(timeout=1):
                    if mask & selectors.EVENT_READ:
                        try:
                            data = sock.recv(65536)
                        except ConnectionError:
                            data = b""
                        if not data:
                            deadline = 0  # closed before a whole head: no answer
                            break
                        answer += data
                    if writing and mask & selectors.EVENT_WRITE:
                        try:
                            sent += sock.send(payload[sent : sent + CHUNK])
                        except (BlockingIOError, InterruptedError):
                            pass
                        except ConnectionError:
                            writing = False  # the server closed: what it answered is read
                        if not writing or sent >= len(payload):
                            writing = False
                            selector.modify(sock, selectors.EVENT_READ)
        elapsed = time.perf_counter() - started
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return (int(match.group(1)) if match else None), elapsed, sent


def _body_burst(served: Served, count: int, chunked: bool) -> Burst:
    burst = Burst(sent=count)
    payload = memoryview(_body_payload(chunked))
    lock = threading.Lock()
    barrier = threading.Barrier(count + 1)

    def one() -> None:
        barrier.wait()
        try:
            status, elapsed, pushed = _send_big(served, payload, chunked)
        except OSError:
            status, elapsed, pushed = None, 0.0, 0
        with lock:
            burst.kinds[_kind(status)] += 1
            if status is not None:
                burst.statuses[status] += 1
                burst.latencies.append(elapsed)
            burst.sent_bytes.append(pushed)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    with Memory(served.pid) as memory:
        burst.rss_before = memory.peak
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        burst.seconds = time.perf_counter() - started
    burst.rss_peak = memory.peak
    return burst


# -- what was written ------------------------------------------------------------------

_HALF_WRITTEN = {
    "patients without an account": """
        SELECT count(*) FROM patients p
        WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.patient_id = p.id)""",
    "patient accounts without a patient": """
        SELECT count(*) FROM accounts a
        WHERE a.role = 'patient' AND (a.patient_id IS NULL
            OR NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = a.patient_id))""",
    "patients without a data key": """
        SELECT count(*) FROM patients p
        WHERE NOT EXISTS (SELECT 1 FROM data_keys k WHERE k.owner_id = p.id)""",
    "pending accounts without exactly one verification token": """
        SELECT count(*) FROM accounts a WHERE a.status = 'pending' AND (
            SELECT count(*) FROM account_tokens t
            WHERE t.account_id = a.id AND t.purpose = 'verify_email') <> 1""",
    "pending accounts without exactly one delivered email": """
        SELECT count(*) FROM accounts a WHERE a.status = 'pending' AND (
            SELECT count(*) FROM outbound_emails e
            WHERE e.account_id = a.id AND e.sent_at IS NOT NULL) <> 1""",
    "emails neither delivered nor failed": """
        SELECT count(*) FROM outbound_emails WHERE sent_at IS NULL AND failed_at IS NULL""",
}


def _outbox(settings: Settings) -> dict[str, list[bytes]]:
    """The outbox's messages by recipient."""
    found: dict[str, list[bytes]] = {}
    for path in sorted(settings.outbox_dir.glob("*.eml")):
        raw = path.read_bytes()
        message = BytesParser(policy=policy.default).parsebytes(raw)
        found.setdefault(str(message["To"]).strip().lower(), []).append(raw)
    return found


def _token(raw: bytes) -> str | None:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    body = message.get_body(preferencelist=("plain", "html"))
    content = body.get_content() if body is not None else ""
    match = re.search(r"[?#]token=([A-Za-z0-9_\-]+)", content)
    return match.group(1) if match else None


def _check(
    settings: Settings,
    answers: dict[str, int | None],
    bodies: dict[str, dict[str, object]],
    served: Served,
) -> Checks:
    accepted = sorted(email for email, status in answers.items() if status in range(200, 300))
    refused = {email for email, status in answers.items() if email not in accepted}
    checks = Checks(accepted=len(accepted))
    # What follows an answer (the email's outcome) is given a moment to be recorded.
    time.sleep(1)
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            checks.pending_accounts = int(
                connection.execute(
                    text("SELECT count(*) FROM accounts WHERE status = 'pending'")
                ).scalar_one()
            )
            checks.patients = (
                int(connection.execute(text("SELECT count(*) FROM patients")).scalar_one()) - 1
            )
            for name, query in _HALF_WRITTEN.items():
                checks.half_written[name] = int(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()
    outbox = _outbox(settings)
    checks.emailed_accepted = sum(len(outbox.get(email, ())) == 1 for email in accepted)
    checks.half_written["emails to refused addresses"] = sum(
        len(outbox.get(email, ())) for email in refused
    )
    # A few accepted registrations, completed the real way.
    with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
        for email in accepted[:VERIFIED]:
            checks.tried += 1
            token = _token(outbox[email][0]) if email in outbox else None
            if token is None:
                continue
            if http.post(VERIFY, json={"token": token}).status_code != 204:
                continue
            password = bodies[email]["password"]
            answer = http.post(
                LOGIN,
                json={"email": email, "password": password},
                headers={"X-Forwarded-For": SEED_ADDRESS},
            )
            checks.completed += answer.status_code == 200
    return checks


# -- running ---------------------------------------------------------------------------


def _run_one(
    deployment: Deployment, settings: Settings, log: Path, registrations: int, bodies: int
) -> tuple[Run, Seeded]:
    print(f"registrations: {deployment.name}…", file=sys.stderr, flush=True)
    started = time.perf_counter()
    _init(settings)
    seeded = _seed(settings)
    run_id = uuid.uuid4().hex[:8]
    made = _registrations(registrations, run_id)
    with _serve(settings, deployment.workers, log) as served:
        # Warm up: code loaded, the dummy hash made, in every worker.
        with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
            for _ in range(2 * deployment.workers):
                _sign_in(http, seeded)
        load = os.getloadavg()[0]
        burst, answers, during = _register_burst(served, made, seeded)
        with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
            after = _sign_in(http, seeded)
        checks = _check(settings, answers, {str(b["email"]): b for _, b in made}, served)
        declared = _body_burst(served, bodies, chunked=False)
        chunked = _body_burst(served, bodies, chunked=True)
        with httpx.Client(base_url=served.base, timeout=TIMEOUT) as http:
            healthy = http.get("/api/v1/health").status_code == 200
            healthy = healthy and _sign_in(http, seeded) == 200
    run = Run(
        deployment=deployment,
        registrations=burst,
        sign_ins_during=during,
        sign_in_after=after,
        checks=checks,
        declared=declared,
        chunked=chunked,
        healthy_after=healthy,
        seconds=time.perf_counter() - started,
        load=load,
    )
    return run, seeded


def _forget_guard_state(settings: Settings, seeded: Seeded) -> None:
    runtime = Runtime.open(settings)
    try:
        assert runtime.guard is not None
        runtime.guard.state.release(seeded.account_id)
    finally:
        runtime.close()


def run(
    *, registrations: int = REGISTRATIONS, bodies: int = BODIES, postgres: bool = True
) -> RegistrationsResult:
    result = RegistrationsResult(registrations=registrations, bodies=bodies)
    result.software = [
        f"uvicorn {_package('uvicorn')}",
        f"argon2-cffi {_package('argon2-cffi')}",
        f"httpx {_package('httpx')} (client)",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-registrations-") as folder:
        root = Path(folder)
        log = root / "server.log"
        for deployment in (d for d in DEPLOYMENTS if d.database == "sqlite"):
            data = root / f"sqlite-{deployment.workers}"
            settings = _settings(data / "var", f"sqlite:///{data / 'hippocrate.db'}", None)
            result.runs.append(_run_one(deployment, settings, log, registrations, bodies)[0])
        on_postgres = [d for d in DEPLOYMENTS if d.database == "postgresql"]
        if not postgres:
            result.skipped += [(d.name, "not asked (--redis '')") for d in on_postgres]
            return result
        try:
            versions = [f"PostgreSQL {_postgres_version()}", f"Redis {_redis_version()}"]
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped += [
                (d.name, f"not reachable ({type(exc).__name__})") for d in on_postgres
            ]
            return result
        result.software += [*versions, f"psycopg {_package('psycopg')}"]
        for deployment in on_postgres:
            with _postgres_database() as url:
                data = root / f"postgresql-{deployment.workers}"
                settings = _settings(data / "var", url, BENCH_REDIS)
                made, seeded = _run_one(deployment, settings, log, registrations, bodies)
                result.runs.append(made)
                _forget_guard_state(settings, seeded)
    return result


# -- report ----------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} × {kind}" for kind, n in sorted(counter.items())) or "—"


def report(result: RegistrationsResult) -> str:
    """The "Registrations under a burst" section, in Markdown."""
    lines = [
        "## Registrations under a burst",
        "",
        f"Software: {'; '.join(result.software)}.",
        "",
        f"{result.registrations} registrations released at once (one connection each, "
        "each from its own client address named in `X-Forwarded-For` to the app, which "
        "trusts the bench as its proxy), production argon2id (64 MiB a hash), default "
        "pools and limits; a seeded patient signs in every "
        f"{SIGN_IN_EVERY * 1000:.0f} ms during the burst and once after it. RSS: the "
        "server's process tree (every uvicorn process), sampled every "
        f"{SAMPLE_EVERY * 1000:.0f} ms.",
        "",
        "| Deployment | 2xx | 429 | 503 | 500 | other | connection errors | 429/503 without "
        "Retry-After | Wall (s) | p50 (ms) | p99 (ms) | RSS before (MiB) | RSS peak (MiB) "
        "| Sign-ins during | Sign-in after |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for r in result.runs:
        b = r.registrations
        k = b.kinds
        lines.append(
            f"| {r.deployment.name} | {k['2xx']} | {k['429']} | {k['503']} | {k['500']} "
            f"| {k['other']} | {k['connection error']} | {b.no_retry_after} "
            f"| {b.seconds:.1f} | {_ms(b.percentile(50))} | {_ms(b.percentile(99))} "
            f"| {b.rss_before:.0f} | {b.rss_peak:.0f} | {_counts(r.sign_ins_during)} "
            f"| {r.sign_in_after} |"
        )
    lines += ["", "The refusals, by what they said:", ""]
    for r in result.runs:
        reasons = ", ".join(f"{n} × {why}" for why, n in r.registrations.refusals.most_common())
        lines.append(f"- {r.deployment.name}: {reasons or 'none'}.")
    lines += [
        "",
        "What the database and the outbox hold afterwards (every accepted registration "
        "is one pending account, one patient, one data key, one verification token, one "
        "delivered email; a refused one left nothing), and accepted registrations "
        "completed the real way (the emailed link, then a sign-in with the password):",
        "",
        "| Deployment | Accepted | Pending accounts | Patients | Accepted addresses with "
        "one email | Half-written records | Completed and signed in |",
        "|---|--:|--:|--:|--:|---|--:|",
    ]
    for r in result.runs:
        c = r.checks
        half = [f"{n} {name}" for name, n in c.half_written.items() if n]
        lines.append(
            f"| {r.deployment.name} | {c.accepted} | {c.pending_accounts} | {c.patients} "
            f"| {c.emailed_accepted} | {'; '.join(half) or 'none'} "
            f"| {c.completed} of {c.tried} |"
        )
    lines += [
        "",
        f"{result.bodies} requests to the sign-in route released at once, each with a "
        f"{BODY_BYTES // (1024 * 1024)} MiB JSON body, pushed as fast as the server "
        "takes it until it answers: with its length declared (`Content-Length`), and "
        "streamed without one (`Transfer-Encoding: chunked`). Pushed: bytes the client "
        "got into the connection before the answer (the socket buffers included).",
        "",
        "| Deployment | Body | Answers | p50 (ms) | p99 (ms) | Pushed, max (KiB) "
        "| RSS before (MiB) | RSS peak (MiB) |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in result.runs:
        for label, b in (("declared", r.declared), ("chunked", r.chunked)):
            lines.append(
                f"| {r.deployment.name} | {label} | {_counts(b.kinds)} "
                f"| {_ms(b.percentile(50))} | {_ms(b.percentile(99))} "
                f"| {max(b.sent_bytes, default=0) / 1024:,.0f} | {b.rss_before:.0f} "
                f"| {b.rss_peak:.0f} |"
            )
    lines.append("")
    durations = "; ".join(
        f"{r.deployment.name} {r.seconds:.0f} s (load {r.load:.1f})" for r in result.runs
    )
    lines.append(
        "Each deployment (init, seed, start, bursts, checks), and the machine's 1-minute "
        f"load average when its burst was released: {durations}."
    )
    healthy = all(r.healthy_after for r in result.runs)
    lines.append(
        "After the bursts every server answered its health check and a sign-in: "
        f"{'yes' if healthy else 'NO'}."
    )
    for name, why in result.skipped:
        lines.append(f"Not run: {name}: {why}.")
    lines.append("")
    return "\n".join(lines)
