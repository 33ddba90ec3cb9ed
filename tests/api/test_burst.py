"""A burst of registrations is answered whole or refused whole, never 500.

Against ``hippocrate serve`` in a process of its own (production argon2 parameters, one
hashing slot, the default database pool), on SQLite and PostgreSQL: 30 registrations at
once from 10 client addresses, which the server learns from ``X-Forwarded-For`` because
the test is its trusted proxy. Every answer is 202, or 429/503 with ``Retry-After``;
each address gets exactly one 429 (its third registration, past a budget of two),
which a server that ignored or misread the header could not give; and the database
holds, for every accepted registration and for no refused one, a pending account, its
patient and data key, one verification token and one delivered email.

The in-process test below shows the cause of the stalls, and of the emails recorded as
neither delivered nor failed, that a burst of 100 still got once the hashes no longer
held connections: a registration's email was delivered, and its outcome recorded in a
transaction of its own, while the registration's connection was still held, so a burst
exhausted the pool (each request waiting for a second connection).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hippocrate.app import create_app
from hippocrate.db.engine import SessionFactory, make_engine
from hippocrate.runtime import Runtime
from tests.cli.test_cli import Cli
from tests.cli.test_keys_processes import Server, serving
from tests.conftest import Store, _fresh_postgres
from tests.identity.conftest import TestClient, settings_for
from tests.identity.helpers import fast_password_hashing, new_password, patient_data

REGISTER = "/api/v1/auth/register"
PARALLEL = 30
ADDRESSES = 10  # client addresses, three registrations each
PER_ADDRESS = 2  # the registration budget of one address

#: Every accepted registration is whole; a refused one left nothing.
HALF_WRITTEN = {
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


QUERIES = tuple(HALF_WRITTEN.items())


def _registration(n: int) -> dict[str, Any]:
    data = patient_data(email=f"burst{n}@example.org").model_dump(mode="json")
    return {**data, "password": new_password()}


def _written(url: str) -> tuple[int, int, dict[str, int]]:
    """Pending accounts, patients, and the count of each kind of half-written record."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            pending = connection.execute(
                text("SELECT count(*) FROM accounts WHERE status = 'pending'")
            ).scalar_one()
            patients = connection.execute(text("SELECT count(*) FROM patients")).scalar_one()
            half = {
                name: connection.execute(text(q)).scalar_one() for name, q in HALF_WRITTEN.items()
            }
    finally:
        engine.dispose()
    return int(pending), int(patients), {name: int(n) for name, n in half.items()}


def _recipients(outbox: Path) -> Counter[str]:
    parser = BytesParser(policy=policy.default)
    return Counter(
        str(parser.parsebytes(path.read_bytes())["To"]).strip().lower()
        for path in outbox.glob("*.eml")
    )


# -- one connection at a time -----------------------------------------------------------


def test_a_registration_holds_one_database_connection_at_a_time(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """With a pool of one connection, a registration completes at once and its email's
    outcome is recorded: the delivery waits until the unit of work gave its connection
    back (before, it asked for a second one while holding the first, waited the pool's
    timeout, and left the email recorded as neither delivered nor failed)."""
    settings = settings_for(tmp_path, sqlite_store)
    engine = make_engine(sqlite_store.url, pool_size=1, max_overflow=0, pool_timeout=3)
    sessions = SessionFactory(engine, sqlite_store.sessions.vault, sqlite_store.sessions.keys)
    app = create_app(runtime=Runtime(settings, sessions))
    try:
        with fast_password_hashing(), TestClient(app) as client:
            started = time.monotonic()
            answer = client.post(REGISTER, json=_registration(0))
            elapsed = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert elapsed < 2, elapsed  # never waited for the pool's timeout
        pending, _patients, half = _written(sqlite_store.url)
        assert pending == 1
        assert not any(half.values()), half
        assert _recipients(settings.outbox_dir) == Counter({"burst0@example.org": 1})
    finally:
        engine.dispose()


# -- a burst against a served process ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Cli, str]:
    """An initialised deployment on either backend, and its database URL."""
    env = {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}
    cli = Cli(tmp_path, env)
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        _fresh_postgres(url).dispose()
        env["HIPPOCRATE_DATABASE_URL"] = url
    else:
        url = f"sqlite:///{cli.database}"
    cli.ok("init")
    return cli, url


def _burst(server: Server) -> list[tuple[str, str, httpx.Response | None]]:
    """``PARALLEL`` registrations released at once: (email, client address, answer)."""
    barrier = threading.Barrier(PARALLEL)

    def one(n: int) -> tuple[str, str, httpx.Response | None]:
        body, address = _registration(n), f"198.51.100.{n % ADDRESSES + 1}"
        with httpx.Client(base_url=server.base, timeout=60) as http:
            barrier.wait()
            try:
                answer = http.post(REGISTER, json=body, headers={"X-Forwarded-For": address})
            except httpx.HTTPError:
                answer = None
        return body["email"], address, answer

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(one, range(PARALLEL)))


def test_a_burst_of_registrations_is_accepted_or_refused_whole(
    deployment: tuple[Cli, str],
) -> None:
    cli, url = deployment
    pending_before, patients_before, _ = _written(url)  # init plants honeytokens
    with serving(
        cli,
        HIPPOCRATE_TRUSTED_PROXIES="127.0.0.1",
        HIPPOCRATE_PROXY_HEADER="x-forwarded-for",
        HIPPOCRATE_HASHING_CONCURRENCY="1",
        HIPPOCRATE_HASHING_WAIT_SECONDS="1",
        HIPPOCRATE_REGISTRATIONS_PER_CLIENT=str(PER_ADDRESS),
    ) as server:
        answers = _burst(server)
        time.sleep(0.5)  # an email's outcome is recorded right after its answer
        assert httpx.get(f"{server.base}/api/v1/health", timeout=10).status_code == 200

    statuses = Counter(answer.status_code if answer else None for _, _, answer in answers)
    assert statuses[500] == 0, statuses
    assert set(statuses) <= {202, 429, 503}, statuses  # no connection error either
    assert statuses[202] >= 1, statuses
    for _email, _address, answer in answers:
        assert answer is not None
        if answer.status_code in (429, 503):
            assert answer.headers["content-type"] == "application/problem+json"
            assert int(answer.headers["retry-after"]) >= 1
    # Three registrations per address, two admitted: one 429 for each address.
    refused = Counter(address for _, address, answer in answers if answer.status_code == 429)
    assert refused == Counter({f"198.51.100.{n + 1}": 1 for n in range(ADDRESSES)}), refused

    accepted = {email for email, _, answer in answers if answer.status_code == 202}
    pending, patients, half = _written(url)
    assert not any(half.values()), half
    assert pending - pending_before == patients - patients_before == len(accepted)
    # One email to each accepted address, none to a refused one.
    assert _recipients(_outbox(cli)) == Counter(dict.fromkeys(accepted, 1))


def _outbox(cli: Cli) -> Path:
    """Where ``serve`` writes emails without SMTP: beside the data folder."""
    return cli.data_dir.parent / f"{cli.data_dir.name}-outbox"
