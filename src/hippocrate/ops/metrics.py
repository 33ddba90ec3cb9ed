"""Prometheus metrics, shared by every app process of one machine.

Off unless ``metrics_listen`` is set (``HIPPOCRATE_METRICS_LISTEN``, ``host:port``):
then every process keeps its series in memory-mapped files of one directory
(``PROMETHEUS_MULTIPROC_DIR`` when the operator sets it, else ``DATA_DIR/metrics``) and
serves the sum of every process's files on a listener of its own, apart from the app's
port, so that only the operator's network reaches it. Each process binds that address
with ``SO_REUSEPORT``: whichever answers a scrape answers for all, and the listener
outlives any one worker.

What a label may hold: route templates (``/api/v1/patients/{patient_id}``, never the
path asked), methods, status codes, the names of refusals (error classes), guard rules
(the rule's name, never the reason's numbers), budget classes. Never an id, an email, a
name or a value a person typed: ``tests/ops/test_metrics.py`` scrapes after a workload
and looks for every one of them.

The hooks below (``request``, ``guard``, ``sign_in_failed``...) cost nothing while
metrics are off; the domains call them in one line where the event happens.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.registry import Collector
    from sqlalchemy import Engine

    from hippocrate.config import Settings
    from hippocrate.vault import Vault

log = logging.getLogger(__name__)

#: Request latency buckets (seconds): sign-in's password hash sits near 0.1-0.5.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: The guard's rules, as the reasons of a containment start ("breadth: 21 patients in
#: 3600 s"): the rule is the label, the rest (counts) is not.
GUARD_RULES = ("honeytoken", "breadth", "enumeration", "notice")

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_PID_FILE = re.compile(r"^(\d+)\.pid$")
_PID_DB = re.compile(r"_(\d+)\.db$")


@dataclass
class _Series:
    requests: Counter
    latency: Histogram
    refusals: Counter
    guard: Counter
    containments: Counter
    sign_in_failures: Counter
    sign_in_throttled: Counter
    key_cache: Counter
    key_unwraps: Counter
    budget_used: Gauge
    budget_limit: Gauge
    pool_in_use: Gauge
    pool_size: Gauge


_series: _Series | None = None
_directory: Path | None = None
#: Adds the watched vault's new key counts to the counters (``watch``).
_count_keys: Callable[[], None] | None = None
_lock = threading.Lock()


def enabled() -> bool:
    return _series is not None


def metrics_dir(settings: Settings) -> Path:
    """Where the processes' files are: the operator's ``PROMETHEUS_MULTIPROC_DIR``
    (a directory of its own, e.g. systemd's ``RuntimeDirectory``), else under the data
    folder."""
    chosen = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(chosen) if chosen else settings.data_dir / "metrics"


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as a pair; ``ValueError`` otherwise."""
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"metrics_listen must be host:port, not {value!r}")
    return host, int(port)


def configure(settings: Settings) -> Path | None:
    """Turn metrics on in this process (once; later calls return the same directory),
    or do nothing when ``metrics_listen`` is unset. The directory is emptied when no
    other live process uses it (a fresh start); otherwise only the live gauges of
    processes that died are dropped, and their counters kept, so a sum never goes
    back because a worker was restarted."""
    global _series, _directory  # noqa: PLW0603 - one state per process, by design
    if not settings.metrics_listen:
        return None
    parse_listen(settings.metrics_listen)
    with _lock:
        if _series is not None:
            return _directory
        path = metrics_dir(settings)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        from prometheus_client import values

        # The value class is chosen when prometheus_client is first imported: if that
        # was before the variable was set, choose again (the files, not memory).
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        _clean(path)
        _series = _make_series()
        _directory = path
        return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean(path: Path) -> None:
    from prometheus_client import multiprocess

    with (path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        me = os.getpid()
        pids = set()
        for entry in path.iterdir():
            found = _PID_FILE.match(entry.name) or _PID_DB.search(entry.name)
            if found:
                pids.add(int(found.group(1)))
        pids.discard(me)
        alive = {pid for pid in pids if _alive(pid)}
        if not alive:
            for entry in [*path.glob("*.db"), *path.glob("*.pid")]:
                entry.unlink(missing_ok=True)
        else:
            for pid in pids - alive:
                multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
                (path / f"{pid}.pid").unlink(missing_ok=True)
        (path / f"{me}.pid").touch(mode=0o600)


def definitions(registry: CollectorRegistry) -> None:
    """Define every series of this module in ``registry``: what the app's processes
    export, for a test or a tool to read (``deploy/alerts.yml`` is checked against
    it). Only in a process that has not turned metrics on (whose series go to files)."""
    _make_series(registry)


def _make_series(registry: CollectorRegistry | None = None) -> _Series:
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram

    into = REGISTRY if registry is None else registry
    return _Series(
        requests=Counter(
            "hippocrate_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=into,
        ),
        latency=Histogram(
            "hippocrate_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=into,
        ),
        refusals=Counter(
            "hippocrate_http_refusals",
            "Requests refused (4xx), by kind of refusal (the error's name) and status.",
            ["kind", "status"],
            registry=into,
        ),
        guard=Counter(
            "hippocrate_guard_decisions",
            "The guard's decisions on reads of patient data, by decision and rule.",
            ["decision", "rule"],
            registry=into,
        ),
        containments=Counter(
            "hippocrate_guard_containments",
            "Principals newly contained, by guard rule.",
            ["rule"],
            registry=into,
        ),
        sign_in_failures=Counter(
            "hippocrate_sign_in_failures",
            "Failed proofs of a secret (signin: password at sign-in; mfa: a code; "
            "password: re-authentication).",
            ["factor"],
            registry=into,
        ),
        sign_in_throttled=Counter(
            "hippocrate_sign_in_throttled",
            "Attempts refused because the account or the address is blocked.",
            ["factor"],
            registry=into,
        ),
        key_cache=Counter(
            "hippocrate_key_cache_lookups",
            "Lookups of a data key in the process's cache of unwrapped keys.",
            ["result"],
            registry=into,
        ),
        key_unwraps=Counter(
            "hippocrate_key_unwraps",
            "Data keys unwrapped through the key provider (cache misses, readiness, rotation).",
            registry=into,
        ),
        budget_used=Gauge(
            "hippocrate_unwrap_budget_used",
            "Distinct patients' keys unwrapped in the last minute, in the busiest process.",
            ["budget"],
            multiprocess_mode="livemax",
            registry=into,
        ),
        budget_limit=Gauge(
            "hippocrate_unwrap_budget_limit",
            "The per-process limit of distinct patients' keys unwrapped per minute.",
            ["budget"],
            multiprocess_mode="livemax",
            registry=into,
        ),
        pool_in_use=Gauge(
            "hippocrate_db_connections_in_use",
            "Database connections checked out of the pools, all live processes.",
            multiprocess_mode="livesum",
            registry=into,
        ),
        pool_size=Gauge(
            "hippocrate_db_pool_size",
            "Database connections the pools keep, all live processes.",
            multiprocess_mode="livesum",
            registry=into,
        ),
    )


# -- the hooks ----------------------------------------------------------------------


def request(method: str, route: str, status: int, seconds: float, refusal: str | None) -> None:
    """One answered request (the app's middleware). ``route``: the template."""
    series = _series
    if series is None:
        return
    # A client writes its method as it likes: only the standard ones become labels.
    method = method if method in HTTP_METHODS else "OTHER"
    code = str(status)
    series.requests.labels(method, route, code).inc()
    series.latency.labels(method, route).observe(seconds)
    if 400 <= status < 500:
        series.refusals.labels(refusal or f"http_{code}", code).inc()
    if _count_keys is not None:
        _count_keys()


def rule_of(reason: str) -> str:
    """The guard rule a reason names: ``"breadth: 21 patients in a day"`` is
    ``breadth-day``; a reason of no known rule is ``other``."""
    head = reason.split(":", 1)[0].strip()
    if head == "breadth" and reason.endswith("a day"):
        return "breadth-day"
    return head if head in GUARD_RULES else "other"


def guard(decision: str, reason: str | None = None, *, new: bool = False) -> None:
    """A guard decision: ``allowed`` (a read passed every rule), ``refused`` (already
    contained) or ``contained`` (a rule tripped; ``new``: this call contained)."""
    series = _series
    if series is None:
        return
    rule = rule_of(reason) if reason else "none"
    series.guard.labels(decision, rule).inc()
    if decision == "contained" and new:
        series.containments.labels(rule).inc()


def sign_in_failed(factor: str) -> None:
    if _series is not None:
        _series.sign_in_failures.labels(factor).inc()


def sign_in_throttled(factor: str) -> None:
    if _series is not None:
        _series.sign_in_throttled.labels(factor).inc()


# -- what is sampled from a process ---------------------------------------------------


def watch(vault: Vault, engine: Engine) -> Callable[[], None]:
    """The sampler of this process's vault and database pool, to call every few seconds
    and at scrape time: the key cache's new hits and misses and the data keys newly
    unwrapped are added to the counters (also at the end of every request, so a scrape
    sees a request's lookups once it has answered), the unwrap budgets and the pool set
    the gauges. Only the vault's public counts are read (``Vault.key_counts``,
    ``Vault.budget_use``): the vault imports nothing of metrics."""
    series = _series
    if series is None:
        return lambda: None
    hit, miss = series.key_cache.labels("hit"), series.key_cache.labels("miss")
    unwraps = series.key_unwraps
    seen: list[tuple[int, int, int]] = [(0, 0, 0)]  # what the counters hold: they only go up
    counting = threading.Lock()  # the sampler thread and a scrape may sample at once

    def count() -> None:
        with counting:  # read inside: an older read must never follow a newer one
            now = vault.key_counts()
            if now == seen[0]:
                return  # most requests look up no key
            for counter, before, after in zip((hit, miss, unwraps), seen[0], now, strict=True):
                if after > before:
                    counter.inc(after - before)
            seen[0] = now

    def sample() -> None:
        count()
        for name, use in vault.budget_use().items():
            series.budget_used.labels(name).set(use.used)
            series.budget_limit.labels(name).set(use.limit)
        pool = engine.pool
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        series.pool_in_use.set(checked_out() if callable(checked_out) else 0)
        series.pool_size.set(size() if callable(size) else 0)

    global _count_keys  # noqa: PLW0603 - one vault per process, by design
    _count_keys = count
    sample()
    return sample


# -- the listener ---------------------------------------------------------------------


class _ReusePortServer(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # Every worker binds the same address; the kernel hands each scrape to one.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def scrape(extra: Collector | None = None) -> bytes:
    """The exposition of every process's series (and ``extra``'s, read now)."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    assert _directory is not None
    multiprocess.MultiProcessCollector(registry, path=str(_directory))  # type: ignore[no-untyped-call]
    if extra is not None:
        registry.register(extra)
    return generate_latest(registry)


@contextlib.contextmanager
def serving(
    settings: Settings,
    *,
    extra: Collector | None = None,
    sample: Callable[[], None] = lambda: None,
    every: float = 5.0,
) -> Iterator[tuple[str, int] | None]:
    """While inside: the metrics listener on ``metrics_listen`` (``GET /metrics``), and
    ``sample`` run every ``every`` seconds and before each scrape. Yields the address
    bound, or None when metrics are off."""
    if configure(settings) is None:
        yield None
        return
    assert settings.metrics_listen is not None
    host, port = parse_listen(settings.metrics_listen)
    from prometheus_client import CONTENT_TYPE_LATEST

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            try:
                sample()
                body = scrape(extra)
            except Exception as exc:  # noqa: BLE001 - a scrape failure is answered, logged
                log.warning("metrics scrape failed: %s", type(exc).__name__)
                self.send_error(500)
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # scrapes every few seconds: not worth a log line each

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("_Server", (_ReusePortServer,), {"address_family": family})
    server = server_class((host, port), Handler)
    stop = threading.Event()

    def sampling() -> None:
        while not stop.wait(every):
            try:
                sample()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                log.warning("metrics sampling failed: %s", type(exc).__name__)

    threads = [
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True),
        threading.Thread(target=sampling, name="metrics-sampler", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield server.server_address[:2]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        _forget_self()


def _forget_self() -> None:
    """At a clean stop: this process's live gauges leave the sums."""
    if _directory is None:
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(os.getpid(), str(_directory))  # type: ignore[no-untyped-call]
        (_directory / f"{os.getpid()}.pid").unlink(missing_ok=True)
