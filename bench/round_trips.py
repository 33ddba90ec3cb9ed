"""Round trips per request: what each route of the security tax sends to its stores.

Counted, not timed, in this process (the apps served by a ``TestClient``, on the same
databases the tax uses): every statement the engine sends (SQLAlchemy's
``before_cursor_execute``), every connection check the pool makes on checkout (a
pre-ping is a round trip of its own, which that event does not see), and every packet
of commands sent to Redis (a pipeline is one). Statements of the audit chainer's
thread, which links committed events in batches beside the requests, are counted
apart. Each route is sent ``REPEAT`` times after ``WARMUP`` untimed ones, so caches are
warm, as under load; the report gives the most a request needed, and the fewest where
they differ.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.connection
from fastapi import FastAPI
from sqlalchemy import Engine, event

from bench import api, baseline

with warnings.catch_warnings():
    # Starlette asks for httpx2 under its TestClient; the project pins httpx.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

WARMUP = 3
REPEAT = 5
#: Threads that work beside the requests, not for one: their statements are not the
#: request's (the audit chainer links what commits appended, in batches of its own).
BACKGROUND = frozenset({"audit-chainer"})


@dataclass
class Trips:
    """What one request sent, by kind; ``sql``: the statements, for a reader."""

    statements: int = 0
    pings: int = 0
    redis: int = 0
    background: int = 0  # statements of background threads meanwhile (the chainer)
    sql: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.statements + self.pings + self.redis


class Counter:
    """Counts what ``engine`` (and this process's Redis clients) send, request by
    request: ``with counter.request() as trips: ...``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._current: Trips | None = None

    def _statement(self, *args: Any) -> None:
        if self._current is None:
            return
        if threading.current_thread().name in BACKGROUND:
            self._current.background += 1
            return
        self._current.statements += 1
        self._current.sql.append(" ".join(str(args[2]).split()))

    @contextlib.contextmanager
    def installed(self) -> Iterator[Counter]:
        dialect = self.engine.dialect
        ping = dialect.do_ping
        send = redis.connection.AbstractConnection.send_packed_command

        def counted_ping(dbapi_connection: Any) -> bool:
            if self._current is not None:
                self._current.pings += 1
            return bool(ping(dbapi_connection))

        def counted_send(connection: Any, command: Any, check_health: bool = True) -> None:
            if self._current is not None:
                self._current.redis += 1
            send(connection, command, check_health)  # type: ignore[no-untyped-call]

        event.listen(self.engine, "before_cursor_execute", self._statement)
        dialect.do_ping = counted_ping  # type: ignore[method-assign]
        redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._statement)
            del dialect.do_ping
            redis.connection.AbstractConnection.send_packed_command = send  # type: ignore[method-assign]

    @contextlib.contextmanager
    def request(self) -> Iterator[Trips]:
        trips = Trips()
        self._current = trips
        try:
            yield trips
        finally:
            self._current = None


Send = Callable[[Any, Any, int], Any]


def count_route(
    client: Any,
    counter: Counter,
    send: Send,
    seat: Any,
    check: Callable[[Any], bool],
    *,
    warmup: int = WARMUP,
    repeat: int = REPEAT,
) -> list[Trips]:
    """``repeat`` requests of one route after ``warmup``, each answered as ``check``
    wants (else ``RuntimeError``): what each sent."""
    for n in range(warmup):
        response = send(client, seat, -n - 1)
        if not check(response):
            raise RuntimeError(f"refused: {response.status_code} {response.text[:200]}")
    counted = []
    for n in range(repeat):
        with counter.request() as trips:
            response = send(client, seat, n)
        if not check(response):
            raise RuntimeError(f"refused: {response.status_code} {response.text[:200]}")
        counted.append(trips)
    return counted


#: (database, app, route) -> what each counted request sent.
Counts = dict[tuple[str, str, str], list[Trips]]


def _count_app(
    counts: Counts, database: str, app_name: str, app: FastAPI, engine: Engine, seats: Any
) -> None:
    from bench import tax

    with TestClient(app) as client, Counter(engine).installed() as counter:
        seat = seats(client)
        for route in tax.ROUTES:

            def check(response: Any, route: str = route) -> bool:
                return tax.answered(route, response)

            counts[database, app_name, route] = count_route(
                client, counter, tax.SENDS[route], seat, check
            )


def count_database(
    counts: Counts, database: str, url: str, redis_url: str | None, root: Path
) -> None:
    """Both apps on a fresh database at ``url``: their round trips per route."""
    from bench import tax
    from hippocrate.app import create_app
    from hippocrate.runtime import Runtime

    settings = api._settings(root / f"h-{database}", url, redis_url)
    api._init(settings)
    made = api._seed(settings, seats=1)
    runtime = Runtime.open(settings)
    try:

        def signed_in(client: Any) -> tax.Seat:
            s = made[0]
            return tax.Seat(
                api._sign_in(client, s.practitioner),
                api._sign_in(client, s.patient),
                str(s.read_id),
                str(s.post_id),
            )

        app = create_app(runtime=runtime)
        _count_app(counts, database, "hippocrate", app, runtime.sessions.engine, signed_in)
    finally:
        if redis_url:
            api._forget_guard_state(settings, made)
        runtime.close()


def count_baseline(counts: Counts, database: str, url: str, root: Path) -> None:
    from bench import tax

    seats = tax._seed_baseline(url)
    app = baseline.create_app(url, root / f"b-blobs-{database}")
    try:
        _count_app(counts, database, "baseline", app, app.state.engine, lambda _c: seats[0])
    finally:
        app.state.engine.dispose()


def spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{high}" if low == high else f"{low}–{high}"
