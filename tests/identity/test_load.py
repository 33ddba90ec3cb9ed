"""Load that degrades, never breaks: anonymous requests are admitted within budgets,
password hashes wait for a bounded pool, a saturated server answers 503 with
``Retry-After`` (never 500), and no request body is read past its limit.

The parallel registrations against a real server process are in
``tests/api/test_load_processes.py``; here the app runs in the test's process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from hippocrate.api.limits import upload_limit
from hippocrate.app import create_app
from hippocrate.db.engine import SessionFactory, make_engine
from hippocrate.identity import passwords
from hippocrate.identity.errors import HashingBusy
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.identity.conftest import (
    Env,
    TestClient,
    assert_problem,
    link_token,
    settings_for,
)
from tests.identity.helpers import new_password, patient_data

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
RESET = "/api/v1/auth/password-reset"


def _registration(email: str | None = None) -> dict[str, Any]:
    data = patient_data(**({"email": email} if email else {})).model_dump(mode="json")
    return {**data, "password": new_password()}


# -- admission: registration and reset, per address and overall -------------------------


def test_registrations_past_the_address_budget_get_429_alike_for_known_and_unknown(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(registrations_per_client=3)
    env.later()  # one instant for every request: the answers can be compared whole
    known = _registration()
    assert env.client.post(REGISTER, json=known).status_code == 202
    for _ in range(2):
        assert env.client.post(REGISTER, json=_registration()).status_code == 202
    refused = [
        env.client.post(REGISTER, json=_registration(known["email"])),  # a known address
        env.client.post(REGISTER, json=_registration()),  # an unknown one
    ]
    bodies = [assert_problem(answer, 429) for answer in refused]
    assert bodies[0] == bodies[1]
    assert refused[0].headers["retry-after"] == refused[1].headers["retry-after"]
    assert 1 <= int(refused[0].headers["retry-after"]) <= env.settings.anonymous_window_seconds
    # Nothing was created or sent for the refused ones.
    assert len(env.emails_to(known["email"])) == 1


def test_the_overall_budget_holds_whatever_the_address(make_env: Callable[..., Env]) -> None:
    env = make_env(resets_per_client=1_000, resets_global=2)
    for n in range(2):
        assert env.client.post(RESET, json={"email": f"n{n}@example.fr"}).status_code == 202
    answer = env.client.post(RESET, json={"email": "someone@example.fr"})
    assert_problem(answer, 429)
    assert int(answer.headers["retry-after"]) >= 1


def test_a_window_that_ran_out_admits_again(make_env: Callable[..., Env]) -> None:
    env = make_env(resets_per_client=1)
    assert env.client.post(RESET, json={"email": "a@example.fr"}).status_code == 202
    assert env.client.post(RESET, json={"email": "a@example.fr"}).status_code == 429
    env.later(seconds=env.settings.anonymous_window_seconds + 1)
    assert env.client.post(RESET, json={"email": "a@example.fr"}).status_code == 202


def test_completing_a_reset_spends_the_same_budget(make_env: Callable[..., Env]) -> None:
    env = make_env(resets_per_client=2)
    user = env.user()
    assert env.client.post(RESET, json={"email": user.email}).status_code == 202
    token = link_token(env.emails_to(user.email)[-1])
    complete = {"token": token, "password": new_password()}
    assert env.client.post(f"{RESET}/complete", json=complete).status_code == 204
    again = env.client.post(f"{RESET}/complete", json={**complete, "password": new_password()})
    assert_problem(again, 429)


# -- the hashing pool -------------------------------------------------------------------


@contextmanager
def _every_slot_taken() -> Iterator[None]:
    """Take every slot of the hashing pool, as a burst of other requests would."""
    slots, _wait = passwords.pool_size()
    semaphore = passwords._Pool.semaphore
    for _ in range(slots):
        assert semaphore.acquire(timeout=5)
    try:
        yield
    finally:
        for _ in range(slots):
            semaphore.release()


def test_a_full_pool_answers_503_with_retry_after_and_counts_nothing(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(hashing_concurrency=1, hashing_wait_seconds=0.05)
    user = env.user()
    with _every_slot_taken():
        answers = [
            env.post_login(user.email, "wrong-" * 3),
            env.post_login("nobody@example.fr", "x" * 12),
            env.client.post(REGISTER, json=_registration()),
        ]
    for answer in answers:
        body = assert_problem(answer, 503)
        assert body["title"] == "Temporarily unavailable"
        assert answer.headers["retry-after"] == str(HashingBusy.retry_after)
    # Busy is not a failure: the account's counter did not move, the password still works.
    assert env.post_login(user.email, user.password).status_code == 200


def test_hashes_never_run_past_the_pool_size() -> None:
    running_now, peak = 0, 0
    lock = threading.Lock()
    real = passwords._State.hasher

    class Counting:
        def hash(self, password: str) -> str:
            nonlocal running_now, peak
            with lock:
                running_now += 1
                peak = max(peak, running_now)
            try:
                return real.hash(password)
            finally:
                with lock:
                    running_now -= 1

    previous = passwords.pool_size()
    passwords.use_pool(slots=2, wait=30)
    passwords._State.hasher = Counting()  # type: ignore[assignment]
    try:
        threads = [
            threading.Thread(target=passwords.hash_password, args=("s3cret-phrase-long",))
            for _ in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        passwords._State.hasher = real
        passwords.use_pool(slots=previous[0], wait=previous[1])
    assert peak <= 2


def test_a_new_password_is_hashed_before_the_unit_takes_a_connection(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Registration and reset hash first: while they wait for a hashing slot, they hold
    no database connection (a pool of one connection still serves a sign-in meanwhile)."""
    settings = settings_for(tmp_path, sqlite_store, hashing_concurrency=1, hashing_wait_seconds=5)
    engine = make_engine(sqlite_store.url, pool_size=1, max_overflow=0, pool_timeout=2)
    sessions = SessionFactory(engine, sqlite_store.sessions.vault, sqlite_store.sessions.keys)
    app = create_app(runtime=Runtime(settings, sessions))
    try:
        with TestClient(app) as client:
            answers: list[int] = []

            def register() -> None:
                answers.append(client.post(REGISTER, json=_registration()).status_code)

            with _every_slot_taken():
                worker = threading.Thread(target=register)
                worker.start()
                time.sleep(0.5)  # the registration now waits for a slot
                waiting = engine.pool.checkedout()  # type: ignore[attr-defined]
                # ...and the one connection of the pool is free for anyone meanwhile.
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            worker.join()
            assert waiting == 0
            assert answers == [202]
    finally:
        engine.dispose()


# -- database pool saturation -----------------------------------------------------------


def test_a_database_pool_that_stays_taken_answers_503_not_500(
    sqlite_store: Store, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    engine = make_engine(sqlite_store.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    sessions = SessionFactory(engine, sqlite_store.sessions.vault, sqlite_store.sessions.keys)
    app = create_app(runtime=Runtime(settings, sessions))
    try:
        with TestClient(app, raise_server_exceptions=False) as client, engine.connect() as held:
            held.execute(text("SELECT 1"))
            answer = client.post(LOGIN, json={"email": "a@example.fr", "password": "x" * 12})
        body = assert_problem(answer, 503)
        assert body["title"] == "Temporarily unavailable"
        assert int(answer.headers["retry-after"]) >= 1
    finally:
        engine.dispose()


def test_a_database_lock_not_obtained_in_time_answers_503_not_500(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """SQLite has one writer: past its busy timeout a write fails ("database is
    locked"), which is saturation, answered 503 with ``Retry-After``."""
    settings = settings_for(tmp_path, sqlite_store)
    engine = make_engine(sqlite_store.url)

    @event.listens_for(engine, "connect")
    def _short_wait(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout = 200")

    sessions = SessionFactory(engine, sqlite_store.sessions.vault, sqlite_store.sessions.keys)
    app = create_app(runtime=Runtime(settings, sessions))
    writer = sqlite3.connect(sqlite_store.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            answer = client.post(RESET, json={"email": "a@example.fr"})
            writer.execute("ROLLBACK")
            after = client.post(RESET, json={"email": "a@example.fr"})
        body = assert_problem(answer, 503)
        assert body["title"] == "Temporarily unavailable"
        assert int(answer.headers["retry-after"]) >= 1
        assert after.status_code == 202
    finally:
        writer.close()
        engine.dispose()


# -- request bodies ---------------------------------------------------------------------


def _call(app: Any, *, path: str, headers: list[tuple[bytes, bytes]], chunks: Iterator[bytes]):  # type: ignore[no-untyped-def]
    """Send one request to the ASGI ``app``; returns (status, headers, body, bytes the
    app pulled from the client)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        # English, as the suite's test clients ask (tests/conftest.py).
        "headers": [(b"host", b"testserver"), (b"accept-language", b"en"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, pulled


def _endless(size: int) -> Iterator[bytes]:
    while True:
        yield b"[" * size


def test_a_32_mib_body_to_login_is_refused_before_one_byte_is_read(env: Env) -> None:
    declared = str(32 * 1024 * 1024).encode()
    status, headers, body, pulled = _call(
        env.app,
        path=LOGIN,
        headers=[(b"content-type", b"application/json"), (b"content-length", declared)],
        chunks=_endless(64 * 1024),
    )
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert b"Request body too large" in body
    assert pulled == 0
    assert headers[b"cache-control"] == b"no-store"  # the security headers too


def test_a_streamed_body_is_cut_as_soon_as_it_passes_the_limit(env: Env) -> None:
    status, _headers, _body, pulled = _call(
        env.app,
        path=LOGIN,
        headers=[(b"content-type", b"application/json")],
        chunks=_endless(64 * 1024),
    )
    assert status == 413
    assert env.settings.max_body_bytes < pulled <= env.settings.max_body_bytes + 64 * 1024


def test_a_body_within_the_limit_is_served(env: Env) -> None:
    answer = env.post_login("a@example.fr", "p" * 100_000)
    assert answer.status_code in (401, 422)  # parsed, and refused: not for its size


@pytest.mark.parametrize("kind", ["application/json", "multipart/form-data; boundary=x"])
def test_uploads_may_be_larger_but_only_as_multipart_to_an_upload_route(
    env: Env, kind: str
) -> None:
    size = env.settings.max_body_bytes * 2
    declared = [(b"content-type", kind.encode()), (b"content-length", str(size).encode())]
    status, *_ = _call(env.app, path=LOGIN, headers=declared, chunks=iter(()))
    assert status == 413  # not an upload route
    status, *_ = _call(env.app, path="/api/v1/consultations", headers=declared, chunks=iter(()))
    # An upload route: a multipart body of that size passes the middleware (and then
    # needs a principal); a JSON one does not.
    assert status == (401 if kind.startswith("multipart") else 413)
    too_big = str(upload_limit(env.settings) + 1).encode()
    status, *_ = _call(
        env.app,
        path="/api/v1/consultations",
        headers=[(b"content-type", kind.encode()), (b"content-length", too_big)],
        chunks=iter(()),
    )
    assert status == 413
