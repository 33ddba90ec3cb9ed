"""The security tax: Hippocrate against a baseline without its security, side by side.

The same three routes (read a consultation's 20 messages, post a message with a PDF
attached, list consultations) are driven against two apps served the same way
(uvicorn, real processes, loopback) in the same run, one app after the other within
each deployment:

- **baseline**: ``bench.baseline``, the same stack, tables and answers, with plaintext
  columns and no policy, audit trail, guard or file checks;
- **Hippocrate**: the real app, ``hippocrate.app:create_app`` (not the profiled one of
  ``bench.server``: no accumulators around anything).

Deployments: SQLite with one worker (Hippocrate's guard state in the database, its
embedded default), PostgreSQL with one and two workers (Hippocrate's guard state in
Redis). Both apps are seeded with the same numbers: per client a practitioner and a
patient with accounts, a consultation of 20 messages, one to write in, and 18 more
consultations of other patients taken by the same practitioner (20 in the list).

Closed loop: ``CLIENTS`` threads, each with its own seat and keep-alive connection,
send ``REQUESTS`` requests in all, one after the other. Then, on PostgreSQL with two
workers, an open loop for Hippocrate: requests sent on a fixed schedule at 50, 65 and
80 % of the closed-loop rate of the same route, latency counted from the instant each
was due (so a late send counts as waiting), to see the p99 below saturation.

The CPU columns also give the app's cores per process: with two workers, keep-alive
connections stay with the worker that accepted them, so the split says whether both
workers carried the load.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

from bench import api, baseline, round_trips
from hippocrate.db.engine import make_engine
from hippocrate.guard.documents import pdf_bytes

CLIENTS = 8
REQUESTS = 300  # timed requests per route and app (closed loop)
WARMUP = 5  # untimed requests per client before each route
OPEN_SECONDS = 12.0  # length of each open-loop schedule
OPEN_SENDERS = 32  # threads of the open loop (so that a slow answer does not delay sends)
LOAD_SHARES = (0.5, 0.65, 0.8)  # open-loop rates, as shares of the closed-loop one
QUIET_SECONDS = 3.0  # at most this long waiting for the shared machine to calm down
ROUTES = ("read", "post", "list")
APPS = ("baseline", "hippocrate")
_HIPPOCRATE = "hippocrate.app:create_app"  # the real app, not bench.server's profiled one
ATTACHMENT = pdf_bytes("Compte rendu de biologie : NFS normale, CRP 3 mg/L.")


@dataclass(frozen=True)
class Deployment:
    name: str
    database: str
    workers: int


DEPLOYMENTS = (
    Deployment("SQLite, 1 worker", "sqlite", 1),
    Deployment("PostgreSQL + Redis, 1 worker", "postgresql", 1),
    Deployment("PostgreSQL + Redis, 2 workers", "postgresql", 2),
)


@dataclass(frozen=True)
class Seat:
    """What one client sends: headers for its practitioner and its patient, the
    consultation to read and the one to write in (either app)."""

    practitioner: dict[str, str]
    patient: dict[str, str]
    read_id: str
    post_id: str


@dataclass
class Measure:
    app: str
    route: str
    seconds: float
    latencies: list[float]
    failures: int
    cores: dict[str, float | None]
    rate: float | None = None  # the open loop's scheduled rate
    split: list[float] = field(default_factory=list)  # cores per app process
    share: float | None = None  # the open loop's rate over the closed loop's

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass
class TaxResult:
    closed: dict[tuple[str, str, str], Measure] = field(default_factory=dict)
    open: list[Measure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    trips: round_trips.Counts = field(default_factory=dict)


# -- requests --------------------------------------------------------------------------

Send = Callable[[httpx.Client, Seat, int], httpx.Response]

SENDS: dict[str, Send] = {
    "read": lambda http, seat, _n: http.get(
        f"/api/v1/consultations/{seat.read_id}/messages",
        params={"limit": api.MESSAGES},
        headers=seat.practitioner,
    ),
    "list": lambda http, seat, _n: http.get(
        "/api/v1/consultations", params={"limit": api.LISTED}, headers=seat.practitioner
    ),
    "post": lambda http, seat, n: http.post(
        f"/api/v1/consultations/{seat.post_id}/messages",
        data={"body": f"Réponse {n} : voici le compte rendu demandé."},
        files={"files": ("compte-rendu.pdf", ATTACHMENT, "application/pdf")},
        headers=seat.patient,
    ),
}


def answered(route: str, response: httpx.Response) -> bool:
    """The answer each route must give (status, and a full page for the reads)."""
    if route == "post":
        return response.status_code == 201 and len(response.json()["attachments"]) == 1
    if response.status_code != 200:
        return False
    return len(response.json()["items"]) == (api.MESSAGES if route == "read" else api.LISTED)


# -- CPU -------------------------------------------------------------------------------


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds used so far by ``root`` and by each of its children (uvicorn's
    workers, and its multiprocessing helpers, which use next to nothing)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        values = text.rpartition(")")[2].split()
        pid, ppid = int(stat.parent.name), int(values[1])
        if root in (pid, ppid):
            used[pid] = (int(values[11]) + int(values[12])) / tick
    return used


class Cpu:
    """Cores kept busy between two samples: the app, this client, PostgreSQL and
    Redis, and everything else on the machine; and the app's share per process, to
    show whether the workers shared the load (keep-alive connections stay with the
    worker that accepted them)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.split: list[float] = []

    def start(self) -> None:
        self.machine = api._cpu_sample()
        self.app = _tree_cpu(self.server_pid)
        self.client = time.process_time()

    def stop(self, seconds: float) -> dict[str, float | None]:
        spent = api._cpu_between(self.machine, api._cpu_sample())
        now = _tree_cpu(self.server_pid)
        per = [(used - self.app.get(pid, 0.0)) / seconds for pid, used in now.items()]
        self.split = sorted((x for x in per if x >= 0.01), reverse=True)
        app = sum(per)
        client = (time.process_time() - self.client) / seconds
        if spent is None:
            return {"app": app, "client": client, "services": None, "other": None}
        services = max(0.0, spent.services / seconds)
        other = max(0.0, spent.machine / seconds - app - client - services)
        return {"app": app, "client": client, "services": services, "other": other}


# -- serving ---------------------------------------------------------------------------


@contextlib.contextmanager
def serve(factory: str, env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``uvicorn --factory <factory>`` on a loopback port: its base URL and pid."""
    port = api._free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--app-dir",
        str(api.ROOT),
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
        process = subprocess.Popen(command, cwd=api.ROOT, env=env, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server stopped at start:\n{api._tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within 60 s:\n{api._tail(log)}")
            time.sleep(0.2)
        if workers > 1:
            time.sleep(2)  # every worker up, not only the first to answer
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- load ------------------------------------------------------------------------------


def closed_loop(
    base: str, seats: list[Seat], route: str, pid: int, app: str, requests: int = REQUESTS
) -> Measure:
    send = SENDS[route]
    https = [httpx.Client(base_url=base, timeout=60) for _ in seats]
    try:
        with ThreadPoolExecutor(len(seats)) as pool:
            warm = pool.map(
                lambda pair: [
                    answered(route, send(pair[0], pair[1], -n)) for n in range(1, WARMUP + 1)
                ],
                zip(https, seats, strict=True),
            )
            if not all(ok for oks in warm for ok in oks):
                raise RuntimeError(f"{app} {route}: the warm-up was refused")
            api._wait_for_quiet(at_most=QUIET_SECONDS)
            tickets = itertools.count()
            lock = threading.Lock()
            barrier = threading.Barrier(len(seats) + 1)

            def work(http: httpx.Client, seat: Seat) -> tuple[list[float], int]:
                latencies, failures = [], 0
                barrier.wait()
                while True:
                    with lock:
                        n = next(tickets)
                    if n >= requests:
                        return latencies, failures
                    began = time.perf_counter()
                    response = send(http, seat, n)
                    latencies.append(time.perf_counter() - began)
                    failures += not answered(route, response)

            futures = [pool.submit(work, h, s) for h, s in zip(https, seats, strict=True)]
            cpu = Cpu(pid)
            barrier.wait()
            cpu.start()
            began = time.perf_counter()
            outcomes = [f.result() for f in futures]
            seconds = time.perf_counter() - began
            cores = cpu.stop(seconds)
            split = cpu.split
    finally:
        for http in https:
            http.close()
    return Measure(
        app=app,
        route=route,
        seconds=seconds,
        latencies=[x for lats, _ in outcomes for x in lats],
        failures=sum(f for _, f in outcomes),
        cores=cores,
        split=split,
    )


def open_loop(base: str, seats: list[Seat], route: str, pid: int, app: str, rate: float) -> Measure:
    """Requests on a fixed schedule (``rate`` per second for ``OPEN_SECONDS``), each
    timed from the instant it was due."""
    send = SENDS[route]
    count = max(50, int(rate * OPEN_SECONDS))
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    with httpx.Client(
        base_url=base,
        timeout=60,
        limits=httpx.Limits(max_connections=OPEN_SENDERS, max_keepalive_connections=OPEN_SENDERS),
    ) as http:
        for n in range(len(seats) * 2):  # open the connections, untimed
            send(http, seats[n % len(seats)], -n - 1000)
        api._wait_for_quiet(at_most=QUIET_SECONDS)
        start = time.perf_counter() + 0.2

        def one(n: int) -> None:
            nonlocal failures
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            response = send(http, seats[n % len(seats)], n)
            waited = time.perf_counter() - due
            with lock:
                latencies.append(waited)
                failures += not answered(route, response)

        cpu = Cpu(pid)
        cpu.start()
        with ThreadPoolExecutor(OPEN_SENDERS) as pool:
            list(pool.map(one, range(count)))
        seconds = time.perf_counter() - start
        cores = cpu.stop(seconds)
    return Measure(app, route, seconds, latencies, failures, cores, rate=rate, split=cpu.split)


# -- the two apps ----------------------------------------------------------------------


def _baseline_env(url: str, blob_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIPPOCRATE_", "BASELINE_"))}
    env.update(BASELINE_DATABASE_URL=url, BASELINE_BLOB_DIR=str(blob_dir))
    return env


def _seed_baseline(url: str) -> list[Seat]:
    engine = make_engine(url)
    try:
        baseline.create_schema(engine)
        made = baseline.seed(engine, seats=CLIENTS, messages=api.MESSAGES, listed=api.LISTED)
    finally:
        engine.dispose()
    return [
        Seat(
            {"Authorization": f"Bearer {s.practitioner}"},
            {"Authorization": f"Bearer {s.patient}"},
            str(s.read_id),
            str(s.post_id),
        )
        for s in made
    ]


def _signed_in(base: str, seats: list[api.Seat]) -> list[Seat]:
    """Hippocrate's seats, signed in through its API (password, then TOTP)."""
    with httpx.Client(base_url=base, timeout=60) as http:
        return [
            Seat(
                api._sign_in(http, s.practitioner),
                api._sign_in(http, s.patient),
                str(s.read_id),
                str(s.post_id),
            )
            for s in seats
        ]


@dataclass
class Prepared:
    """One database's two apps, seeded: how to serve each and their seats."""

    factories: dict[str, str]
    envs: dict[str, dict[str, str]]
    baseline_seats: list[Seat]
    hippocrate_seats: list[api.Seat]


def _run_deployment(
    result: TaxResult, deployment: Deployment, prepared: Prepared, log: Path, *, open_: bool
) -> None:
    """Both apps served at once; each route driven against one then the other, so a
    change in the machine's other load hits both alike (an idle server costs nothing)."""
    started = time.perf_counter()
    print(f"tax: {deployment.name}…", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as stack:
        served = {
            app: stack.enter_context(
                serve(prepared.factories[app], prepared.envs[app], deployment.workers, log)
            )
            for app in APPS
        }
        seats = {
            "baseline": prepared.baseline_seats,
            "hippocrate": _signed_in(served["hippocrate"][0], prepared.hippocrate_seats),
        }
        for route in ROUTES:
            for app in APPS:
                base, pid = served[app]
                result.closed[deployment.name, app, route] = closed_loop(
                    base, seats[app], route, pid, app
                )
        if open_:
            base, pid = served["hippocrate"]
            for route in ROUTES:
                peak = result.closed[deployment.name, "hippocrate", route].throughput
                for share in LOAD_SHARES:
                    measured = open_loop(
                        base, seats["hippocrate"], route, pid, "hippocrate", share * peak
                    )
                    measured.share = share
                    result.open.append(measured)
    result.seconds[deployment.name] = time.perf_counter() - started


def count_round_trips(result: TaxResult) -> None:
    """Round trips per request of each route, both apps, SQLite then PostgreSQL + Redis
    (``bench.round_trips``: counted in this process, on databases of their own)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-trips-") as folder:
        root = Path(folder)
        round_trips.count_database(result.trips, "SQLite", f"sqlite:///{root / 'h.db'}", None, root)
        round_trips.count_baseline(result.trips, "SQLite", f"sqlite:///{root / 'b.db'}", root)
        try:
            api._postgres_version()
            api._redis_version()
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped.append(f"round trips on PostgreSQL + Redis ({type(exc).__name__})")
        else:
            with api._postgres_database() as h_url, api._postgres_database() as b_url:
                database = "PostgreSQL + Redis"
                round_trips.count_database(result.trips, database, h_url, api.REDIS_URL, root)
                round_trips.count_baseline(result.trips, database, b_url, root)
    result.seconds["round trips"] = time.perf_counter() - started


def _run_or_note(
    result: TaxResult, deployment: Deployment, prepared: Prepared, log: Path, *, open_: bool
) -> None:
    """One deployment; if its servers fail, the report says so and the run goes on."""
    try:
        _run_deployment(result, deployment, prepared, log, open_=open_)
    except (httpx.HTTPError, RuntimeError) as exc:
        result.skipped.append(f"{deployment.name}: failed ({type(exc).__name__}: {exc})")


def run(*, load: bool = True, databases: tuple[str, ...] = ("sqlite", "postgresql")) -> TaxResult:
    """The round trips, then (``load``) the closed and open loops, on ``databases``."""
    result = TaxResult()
    result.software = [
        f"uvicorn {api._package('uvicorn')}",
        f"FastAPI {api._package('fastapi')}",
        f"httpx {api._package('httpx')} (client)",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    count_round_trips(result)
    if not load:
        return result
    with tempfile.TemporaryDirectory(prefix="hippocrate-bench-tax-") as folder:
        root = Path(folder)
        log = root / "server.log"

        settings = api._settings(root / "h-sqlite", f"sqlite:///{root / 'h.db'}", None)
        api._init(settings)
        started = time.perf_counter()
        h_seats = api._seed(settings, seats=CLIENTS)
        result.seconds["seed Hippocrate, SQLite"] = time.perf_counter() - started
        b_url = f"sqlite:///{root / 'b.db'}"
        prepared = Prepared(
            factories={"baseline": "bench.baseline:create_app", "hippocrate": _HIPPOCRATE},
            envs={
                "baseline": _baseline_env(b_url, root / "b-blobs"),
                "hippocrate": api._server_env(settings),
            },
            baseline_seats=_seed_baseline(b_url),
            hippocrate_seats=h_seats,
        )
        if "sqlite" in databases:
            _run_or_note(result, DEPLOYMENTS[0], prepared, log, open_=False)
        if "postgresql" not in databases:
            return result
        try:
            versions = [f"PostgreSQL {api._postgres_version()}", f"Redis {api._redis_version()}"]
        except (psycopg.Error, redis.RedisError) as exc:
            result.skipped.append(f"PostgreSQL + Redis: not reachable ({type(exc).__name__})")
            return result
        result.software += [*versions, f"psycopg {api._package('psycopg')}"]
        with api._postgres_database() as h_url, api._postgres_database() as b_url:
            settings = api._settings(root / "h-postgresql", h_url, api.REDIS_URL)
            api._init(settings)
            started = time.perf_counter()
            h_seats = api._seed(settings, seats=CLIENTS)
            result.seconds["seed Hippocrate, PostgreSQL"] = time.perf_counter() - started
            prepared = Prepared(
                factories={"baseline": "bench.baseline:create_app", "hippocrate": _HIPPOCRATE},
                envs={
                    "baseline": _baseline_env(b_url, root / "b-blobs-pg"),
                    "hippocrate": api._server_env(settings),
                },
                baseline_seats=_seed_baseline(b_url),
                hippocrate_seats=h_seats,
            )
            try:
                for deployment in DEPLOYMENTS[1:]:
                    _run_or_note(result, deployment, prepared, log, open_=deployment.workers == 2)
            finally:
                api._forget_guard_state(settings, h_seats)
    return result


# -- report ----------------------------------------------------------------------------

_LABELS = {
    "read": f"read a consultation ({api.MESSAGES} messages)",
    "post": "post a message with a PDF",
    "list": f"list consultations ({api.LISTED})",
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _cores(m: Measure) -> str:
    cores = " / ".join("—" if v is None else f"{v:.2f}" for v in m.cores.values())
    if len(m.split) > 1:
        cores += " (" + " + ".join(f"{x:.2f}" for x in m.split) + ")"
    return cores


def trips_report(result: TaxResult) -> list[str]:
    """The round trips per request, one row per database and route."""
    if not result.trips:
        return []
    lines = [
        "Round trips per request (counted, not timed, in one process, caches warm: "
        f"{round_trips.REPEAT} requests of each route after {round_trips.WARMUP}; the most "
        "one request needed, and the fewest where they differ): SQL statements the engine "
        "sent, connection checks the pool made on checkout (pre-ping), packets sent to "
        "Redis (a pipeline is one).",
        "",
        "| Database | Route | Baseline statements | Hippocrate statements | pings | Redis "
        "| Hippocrate total |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    databases = list(dict.fromkeys(database for database, _, _ in result.trips))
    for database in databases:
        for route in ROUTES:
            b = result.trips.get((database, "baseline", route), [])
            h = result.trips.get((database, "hippocrate", route), [])
            if not h:
                continue
            base = round_trips.spread([t.statements for t in b]) if b else "—"
            lines.append(
                f"| {database} | {_LABELS[route]} | {base} "
                f"| {round_trips.spread([t.statements for t in h])} "
                f"| {round_trips.spread([t.pings for t in h])} "
                f"| {round_trips.spread([t.redis for t in h])} "
                f"| {round_trips.spread([t.total for t in h])} |"
            )
    return [*lines, ""]


def report(result: TaxResult) -> str:
    lines = [
        "## Security tax",
        "",
        f"Software: {'; '.join(result.software)}.",
        "",
        *trips_report(result),
    ]
    if result.closed:
        lines += [
            f"Closed loop: {CLIENTS} client threads, one keep-alive connection and one seat "
            f"each, {WARMUP} untimed requests per client then {REQUESTS} timed requests per "
            "route and app. Ratio: Hippocrate's throughput over the baseline's (goal ≥ 0.80). "
            "CPU: cores kept busy over the timed requests (of "
            f"{os.cpu_count()}) by the app / this client / PostgreSQL and Redis / everything "
            "else on the machine; in brackets, the app's cores per worker process.",
            "",
            "| Deployment | Route | Baseline req/s | p50 (ms) | p99 (ms) | Hippocrate req/s "
            "| p50 (ms) | p99 (ms) | Ratio | Failed | CPU baseline | CPU Hippocrate |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|---|",
        ]
    for deployment in DEPLOYMENTS:
        for route in ROUTES:
            b = result.closed.get((deployment.name, "baseline", route))
            h = result.closed.get((deployment.name, "hippocrate", route))
            if b is None or h is None:
                continue
            lines.append(
                f"| {deployment.name} | {_LABELS[route]} | {b.throughput:,.0f} "
                f"| {_ms(b.percentile(50))} | {_ms(b.percentile(99))} | {h.throughput:,.0f} "
                f"| {_ms(h.percentile(50))} | {_ms(h.percentile(99))} "
                f"| {h.throughput / b.throughput:.2f} | {b.failures} / {h.failures} "
                f"| {_cores(b)} | {_cores(h)} |"
            )
    if result.open:
        lines += [
            "",
            "Open loop, PostgreSQL + Redis, 2 workers, Hippocrate only: requests due at a "
            f"fixed rate, {', '.join(f'{x:.0%}' for x in LOAD_SHARES)} of the same route's "
            f"closed-loop throughput above, each for {OPEN_SECONDS:.0f} s, from "
            f"{OPEN_SENDERS} sender threads; latency from the instant each request was "
            "due, so a request sent late counts its wait (goal: p99 ≤ 100 ms at 80 %).",
            "",
            "| App | Route | Share | Rate due (req/s) | Achieved (req/s) | p50 (ms) "
            "| p99 (ms) | Failed | CPU |",
            "|---|---|--:|--:|--:|--:|--:|--:|---|",
        ]
        for m in result.open:
            lines.append(
                f"| {m.app} | {_LABELS[m.route]} | {m.share or 0:.0%} | {m.rate or 0:,.0f} "
                f"| {m.throughput:,.0f} "
                f"| {_ms(m.percentile(50))} | {_ms(m.percentile(99))} | {m.failures} "
                f"| {_cores(m)} |"
            )
    lines.append("")
    lines.append(
        "Time: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.seconds.items())
    )
    for reason in result.skipped:
        lines.append(f"Not run: {reason}.")
    return "\n".join(lines) + "\n"
