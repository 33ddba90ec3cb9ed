"""Liveness and readiness tell the truth: each part a request needs, broken for real
(a database that does not answer, a key file without the version in use, a key file
from elsewhere, a Redis that is not there, a job queue that cannot open, an audit event
the chainer left behind), makes readiness 503 with Retry-After and names that part;
liveness keeps answering.

Readiness is asked on a public route, so it is cheap: a result is answered again for
about a second, one check runs at a time however many ask (counted for real: the
database's statements and the vault's unwraps), a part that breaks or recovers is seen
within about a second, and a check that hangs is answered as a failure instead of
holding every caller.

The apps here are not started (no lifespan): no chainer thread runs, as when the
chainer of a deployment stopped."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, insert, text

from hippocrate.app import create_app
from hippocrate.audit.models import AuditPending
from hippocrate.db.engine import SessionFactory, make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.keyring.rotation import rotate_root
from hippocrate.keyring.service import KEYRING
from hippocrate.ops import readiness
from hippocrate.patients.service import create_patient
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store, _fresh_postgres
from tests.identity.conftest import settings_for
from tests.identity.helpers import patient_data

PARTS = ("key_provider", "database", "records", "guard", "chainer", "job_queue")


def app_on(
    store: Store, tmp_path: Path, sessions: SessionFactory | None = None, **changes: Any
) -> FastAPI:
    settings = settings_for(tmp_path, store, **changes)
    return create_app(runtime=Runtime(settings, sessions or store.sessions))


def sessions_with(store: Store, key_file: Path) -> SessionFactory:
    """The store's database, seen through a vault on ``key_file``."""
    vault = Vault(FileKeyProvider(key_file))
    return unsafe_unaudited_sessions(store.engine, vault, KEYRING, why="another key file")


def ready(app: FastAPI) -> httpx.Response:
    response: httpx.Response = TestClient(app).get("/api/v1/health/ready")
    return response


def a_patient(store: Store) -> None:
    with store.sessions.begin() as session:
        create_patient(session=session, data=patient_data())


def assert_unavailable(response: httpx.Response, failing: str) -> dict[str, str]:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    body: dict[str, str] = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == failing, body
    return body


def test_every_part_ok_on_both_routes(store: Store, tmp_path: Path) -> None:
    a_patient(store)
    app = app_on(store, tmp_path)
    client = TestClient(app)
    for path in ("/api/v1/health/ready", "/api/v1/health"):
        response = client.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        assert {part: body[part] for part in PARTS} == dict.fromkeys(PARTS, "ok")
    live = client.get("/api/v1/health/live")
    assert (live.status_code, live.json()["status"]) == (200, "ok")


def test_a_database_that_does_not_answer(store: Store, tmp_path: Path) -> None:
    nowhere = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")
    sessions = unsafe_unaudited_sessions(
        nowhere, store.sessions.vault, KEYRING, why="a database that does not answer"
    )
    app = app_on(store, tmp_path, sessions=sessions)
    # The guard's state is in the database without Redis: it is down with it.
    body = assert_unavailable(ready(app), "database, records, guard")
    assert body["database"] == "unavailable"
    assert body["key_provider"] == "ok"
    # The process still answers: a load balancer must not restart it for this.
    assert TestClient(app).get("/api/v1/health/live").status_code == 200
    nowhere.dispose()


def test_a_key_file_lacking_the_root_version_in_use(store: Store, tmp_path: Path) -> None:
    """After a rotation, a process still given the old key file (a deployment that did
    not copy the new one): its records cannot open."""
    a_patient(store)
    key_file = store.sessions.vault.provider._path  # type: ignore[attr-defined]
    before = tmp_path / "before-rotation.key"
    shutil.copy2(key_file, before)
    rotate_root(sessions=store.sessions)
    assert ready(app_on(store, tmp_path)).status_code == 200

    stale = app_on(store, tmp_path / "stale", sessions=sessions_with(store, before))
    body = assert_unavailable(ready(stale), "key_provider, records")
    assert body["key_provider"] == "root key version 2 is not held"
    assert body["root_key_version"] == "1"


def test_a_key_file_of_another_deployment(store: Store, tmp_path: Path) -> None:
    """It holds version 1, as the deployment's does, but it is another key: the newest
    data key does not unwrap."""
    a_patient(store)
    other = FileKeyProvider.create(tmp_path / "other" / "root.key")
    other.close()
    app = app_on(store, tmp_path, sessions=sessions_with(store, other._path))
    body = assert_unavailable(ready(app), "records")
    assert body["key_provider"] == "ok"
    assert body["records"] == "the newest data key does not unwrap"


def test_a_redis_that_is_not_there(sqlite_store: Store, tmp_path: Path) -> None:
    app = app_on(sqlite_store, tmp_path, redis_url="redis://127.0.0.1:1/0")
    body = assert_unavailable(ready(app), "guard, job_queue")
    assert (body["guard"], body["job_queue"]) == ("unavailable", "unavailable")
    assert body["database"] == "ok"


def test_a_job_queue_that_cannot_open(sqlite_store: Store, tmp_path: Path) -> None:
    # Something else sits where the queue's file must be: the queue cannot open.
    (tmp_path / "var" / "jobs.sqlite3").mkdir(parents=True)
    body = assert_unavailable(ready(app_on(sqlite_store, tmp_path)), "job_queue")
    assert body["guard"] == "ok"


def pending_event(store: Store, at: datetime) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            insert(AuditPending).values(
                at=at,
                actor_role="patient",
                action="patient:record:read",
                resources=[],
                categories=[],
                outcome="allowed",
            )
        )


def test_an_audit_event_the_chainer_left_behind(store: Store, tmp_path: Path) -> None:
    app = app_on(store, tmp_path, audit_chain_seconds=0.5)  # bound: 10 x 0.5 + 5 = 10 s
    readiness.cache_of(app.state.runtime).ttl = 0  # each ask checks anew
    now = datetime.now(UTC)
    pending_event(store, now - timedelta(seconds=1))
    assert ready(app).status_code == 200  # waiting, within the bound
    pending_event(store, now - timedelta(seconds=60))
    body = assert_unavailable(ready(app), "chainer")
    assert body["chainer"].startswith("an audit event waits for 6")
    assert "(bound: 10 s)" in body["chainer"]


@contextmanager
def statements_on(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to the database through ``engine`` while inside."""
    sent: list[str] = []

    def sending(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", sending)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", sending)


def test_many_callers_at_once_cause_one_check(store: Store, tmp_path: Path) -> None:
    a_patient(store)
    app = app_on(store, tmp_path)
    runtime = app.state.runtime
    vault = store.sessions.vault
    # What one check costs, asked directly.
    unwraps = vault.key_counts().unwraps
    with statements_on(store.engine) as one_check:
        assert readiness.check_now(runtime).ok
    assert vault.key_counts().unwraps == unwraps + 1
    assert len(one_check) >= 3  # the data keys, twice, and the guard's state at least

    # A crowd asks the routes at the same instant, with nothing cached yet: the
    # result is kept long enough here for every one of them to arrive within it.
    readiness.cache_of(runtime).ttl = 30
    crowd = 24
    start = threading.Barrier(crowd)

    def ask(n: int) -> int:
        client = TestClient(app)
        start.wait()
        path = "/api/v1/health/ready" if n % 2 else "/api/v1/health"
        response: httpx.Response = client.get(path)
        return response.status_code

    unwraps = vault.key_counts().unwraps
    with statements_on(store.engine) as sent, ThreadPoolExecutor(crowd) as pool:
        codes = list(pool.map(ask, range(crowd)))
    assert codes == [200] * crowd
    assert vault.key_counts().unwraps == unwraps + 1, "more than one check ran"
    assert len(sent) == len(one_check), sent

    # Once the result is older than the TTL, the next caller checks again.
    readiness.cache_of(runtime).ttl = 0.2
    time.sleep(0.25)
    assert TestClient(app).get("/api/v1/health/ready").status_code == 200
    assert vault.key_counts().unwraps == unwraps + 2


def seconds_until(app: FastAPI, status: int, within: float) -> float:
    """Ask readiness until it answers ``status``; how long that took."""
    client = TestClient(app)
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < within:
        if client.get("/api/v1/health/ready").status_code == status:
            return elapsed
        time.sleep(0.02)
    pytest.fail(f"readiness did not answer {status} within {within} s")


def test_a_part_that_breaks_or_recovers_is_seen_within_about_a_second(
    sqlite_store: Store, tmp_path: Path
) -> None:
    app = app_on(sqlite_store, tmp_path)
    assert readiness.cache_of(app.state.runtime).ttl == readiness.TTL == 1.0
    assert ready(app).status_code == 200
    queue = tmp_path / "var" / "jobs.sqlite3"
    assert queue.is_file()
    # Broken for real: a folder where the job queue's file must be.
    queue.unlink()
    queue.mkdir()
    broken = seconds_until(app, 503, within=10)
    assert_unavailable(ready(app), "job_queue")
    queue.rmdir()
    repaired = seconds_until(app, 200, within=10)
    # At most the TTL, plus a check and a few requests of a shared machine (1.0 to
    # 1.3 s measured with a load average of 6).
    assert broken < readiness.TTL + 1.0, broken
    assert repaired < readiness.TTL + 1.0, repaired


def test_a_check_that_hangs_is_a_failure_after_a_second_not_a_queue(
    postgres_database: str, tmp_path: Path, vault: Vault
) -> None:
    """A database that takes the connection but never answers (here: the data keys'
    table locked by another session): the check waits on it, and every other caller is
    answered 503 naming the database after about a second, without waiting with it or
    starting checks of its own."""
    engine = _fresh_postgres(postgres_database)
    upgrade(engine)
    store = Store(
        "postgresql",
        postgres_database,
        engine,
        unsafe_unaudited_sessions(engine, vault, KEYRING, why="a database that hangs"),
    )
    a_patient(store)
    app = app_on(store, tmp_path)
    blocker = engine.connect()
    try:
        blocker.execute(text("LOCK TABLE data_keys IN ACCESS EXCLUSIVE MODE"))
        with ThreadPoolExecutor(1) as pool:
            hung = pool.submit(lambda: ready(app))
            cache = readiness.cache_of(app.state.runtime)
            while cache.running != "database":  # the first check waits on the lock
                assert not hung.done(), hung.result().text
                time.sleep(0.02)
            began = time.monotonic()
            others = [ready(app) for _ in range(3)]
            waited = time.monotonic() - began
            for answer in others:
                body = assert_unavailable(answer, "database")
                assert body["database"].startswith("no answer after "), body
            assert waited < 3 * readiness.TTL, waited  # none waited for the lock
            assert not hung.done()
            blocker.rollback()  # the database answers again
            assert hung.result(timeout=30).status_code == 200
        assert ready(app).status_code == 200
    finally:
        blocker.close()
        engine.dispose()
