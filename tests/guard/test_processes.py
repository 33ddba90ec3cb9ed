"""The guard agrees across processes: a running server and the command line beside it.

The server is ``hippocrate serve`` in a process of its own; the CLI runs commands as an
operator would, on the same data folder and database: the embedded default (SQLite, no
Redis), PostgreSQL without Redis, and PostgreSQL with Redis. A patient works through
the server's API, the real way. What is asserted is what they and the operator see.
"""

from __future__ import annotations

import json
import os
import pwd
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from hippocrate.access.principal import operator_id
from hippocrate.audit.models import AuditEvent
from hippocrate.audit.recorder import Actor
from hippocrate.config import Settings
from hippocrate.db.engine import make_engine
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.guard.service import HONEYTOKEN_PURPOSE
from hippocrate.patients.models import Patient
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault.providers.file import FileKeyProvider
from hippocrate.work import unit_of_work
from tests.cli.test_cli import Cli, assert_one_line_error
from tests.cli.test_keys_processes import PASSWORD, Server, register, serving
from tests.conftest import _fresh_postgres

REDIS_URL = os.environ.get("HIPPOCRATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

#: The operator every command of these tests runs as: this process's system user.
ME = pwd.getpwuid(os.getuid()).pw_name
REASON = ("--reason", "ticket 4312: the patient called about her record")


@pytest.fixture(params=["sqlite", "postgresql", "postgresql+redis"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    env = {"HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}
    if request.param.startswith("postgresql"):
        url = request.getfixturevalue("postgres_database")
        _fresh_postgres(url).dispose()
        env["HIPPOCRATE_DATABASE_URL"] = url
    if request.param.endswith("redis"):
        try:
            # Each deployment has keys of its own in Redis (named after its key
            # provider): no flush needed, and runs beside each other do not mix.
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.RedisError:
            pytest.skip("no Redis server")
        env["HIPPOCRATE_REDIS_URL"] = REDIS_URL
    deployment = Cli(tmp_path, env)
    deployment.ok("init")
    return deployment


def sign_in(server: Server, email: str) -> dict[str, str] | int:
    """The bearer header of a fresh sign-in, or the refusal's status."""
    with server.http() as http:
        login = http.post("/auth/login", json={"email": email, "password": PASSWORD})
    if login.status_code != 200:
        return login.status_code
    return {"Authorization": f"Bearer {login.json()['token']}"}


def database_url(cli: Cli) -> str:
    return cli.env.get("HIPPOCRATE_DATABASE_URL", f"sqlite:///{cli.database}")


def honeytokens(cli: Cli) -> list[uuid.UUID]:
    """The planted honeytokens, found as only the key holder can: by their markers."""
    provider = FileKeyProvider(cli.key_file)
    engine = make_engine(database_url(cli))
    try:
        import hashlib
        import hmac

        key = provider.derive_index_key(HONEYTOKEN_PURPOSE)
        with engine.connect() as connection:
            markers = set(connection.scalars(select(HoneytokenMarker.digest)))
            ids = list(connection.scalars(select(Patient.id)))
        return [p for p in ids if hmac.new(key, p.bytes, hashlib.sha256).digest() in markers]
    finally:
        engine.dispose()
        provider.close()


def trail(cli: Cli, **where: Any) -> list[AuditEvent]:
    engine = make_engine(database_url(cli))
    try:
        with engine.connect() as connection:
            query = select(AuditEvent).filter_by(**where).order_by(AuditEvent.seq)
            return [AuditEvent(**row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


@contextmanager
def webhook() -> Iterator[list[dict[str, Any]]]:
    """A real HTTP server on loopback that keeps every JSON body posted to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        received.append({"url": f"http://127.0.0.1:{server.server_address[1]}/alerts"})
        yield received
    finally:
        server.shutdown()
        server.server_close()


def test_release_and_status_from_the_cli_hold_at_once_in_the_running_server(cli: Cli) -> None:
    with serving(cli) as server:
        patient = register(server, "curieuse")
        headers = sign_in(server, patient.email)
        assert isinstance(headers, dict)
        with server.http() as http:
            account_id = http.get("/me", headers=headers).json()["id"]
            # A thief with her session walks consultation ids: contained past the limit.
            answers = [
                http.get(f"/consultations/{uuid.uuid4()}", headers=headers).status_code
                for _ in range(12)
            ]
            assert answers[0] == 404
            assert answers[-1] in (401, 403, 423), answers
            assert http.get("/patients/me", headers=headers).status_code != 200

        # The CLI, another process, sees what the server decided...
        assert cli.ok("guard", "status", account_id).startswith("contained: enumeration")
        assert sign_in(server, patient.email) != 200

        # ...and its release holds in the server at once, without a restart.
        out = cli.ok("guard", "release", account_id, *REASON)
        assert f"account {account_id} released" in out
        assert cli.ok("guard", "status", account_id).strip() == "not contained"
        headers = sign_in(server, patient.email)
        assert isinstance(headers, dict), headers
        with server.http() as http:
            record = http.get("/patients/me", headers=headers)
        assert record.status_code == 200, record.text
        assert record.json()["family_name"] == patient.family_name

    released = trail(cli, action="guard:principal:released")
    assert [e.actor_role for e in released] == ["operator"]


def test_a_cli_read_is_a_break_glass_the_patient_sees(cli: Cli) -> None:
    with serving(cli) as server:
        patient = register(server, "lectrice")
        headers = sign_in(server, patient.email)
        assert isinstance(headers, dict)
        with server.http() as http:
            patient_id = http.get("/patients/me", headers=headers).json()["id"]

        # No reason, no read: the command says why in one line.
        refused = cli.run("patients", "show", patient_id)
        assert refused.code != 0
        assert "--reason" in refused.err
        shown = json.loads(cli.ok("patients", "show", patient_id, *REASON))
        assert shown["family_name"] == patient.family_name

        with server.http() as http:
            history = http.get("/patients/me/access-log", headers=headers).json()["items"]
    operator_reads = [e for e in history if e["role"] == "operator"]
    assert operator_reads, history
    assert all(f"operator {ME} with break-glass: {REASON[1]}" in e["who"] for e in operator_reads)
    assert all(e["purpose"] == "break-glass" for e in operator_reads)
    reads = trail(cli, actor_account_id=operator_id(ME), action="patient:record:read")
    assert [str(e.patient_id) for e in reads] == [patient_id]


def test_a_honeytoken_read_from_the_cli_contains_the_operator_and_alerts(cli: Cli) -> None:
    decoy, *_ = honeytokens(cli)
    me = operator_id(ME)
    with webhook() as received:
        cli.env["HIPPOCRATE_GUARD_ALERT_WEBHOOK"] = received[0]["url"]
        ran = cli.run("patients", "show", str(decoy), *REASON)
        assert_one_line_error(ran, "contained")
        alerts = [a for a in received[1:] if a.get("event") == "hippocrate.containment"]
    assert [(a["account"], a["reason"]) for a in alerts] == [(str(me), "honeytoken")]
    assert cli.ok("guard", "status", str(me)).startswith("contained: honeytoken")

    # Contained: the next command of the same operator reads nothing, even a real patient;
    # and the operator is the system user, not a name the command is told.
    cli.ok("seed", "--patients", "1", "--seed", "5")
    decoys = set(honeytokens(cli))
    real = next(p for p in all_patients(cli) if p not in decoys)
    assert_one_line_error(cli.run("patients", "show", str(real), *REASON), "contained")
    assert_one_line_error(
        cli.run("patients", "show", str(real), *REASON, USER="someone-else", LOGNAME="x"),
        "contained",
    )
    assert not trail(cli, actor_account_id=me, action="patient:record:read", outcome="allowed")
    assert trail(cli, actor_account_id=me, action="guard:principal:contained")

    # Nobody releases themselves; another operator does, and it holds for the CLI at once.
    assert_one_line_error(cli.run("guard", "release", str(me), *REASON), "themselves")
    release_by_another_operator(cli, me)
    assert cli.ok("guard", "status", str(me)).strip() == "not contained"
    shown = json.loads(cli.ok("patients", "show", str(real), *REASON))
    assert shown["id"] == str(real)


def release_by_another_operator(cli: Cli, account: uuid.UUID) -> None:
    """What ``guard release`` does when another system user runs it (the tests run as
    one user), from this test's own process: a third one."""
    settings = Settings(
        data_dir=cli.data_dir,
        database_url=database_url(cli),
        redis_url=cli.env.get("HIPPOCRATE_REDIS_URL"),
    )
    runtime = Runtime.open(settings)
    try:
        admin = Actor(role="operator", account_id=operator_id("another"), purpose=Purpose.RELEASE)
        assert runtime.guard is not None
        with unit_of_work(runtime, admin) as session:
            runtime.guard.release(session, admin=admin, account_id=account, reason=REASON[1])
    finally:
        runtime.close()


def test_an_operator_reading_many_patients_is_contained(cli: Cli) -> None:
    decoys = set(honeytokens(cli))
    cli.ok("seed", "--patients", "8", "--seed", "3")
    real = [p for p in all_patients(cli) if p not in decoys]
    outcomes = [cli.run("patients", "show", str(p), *REASON).code for p in real]
    # The operator's breadth limit is 5 patients an hour: the sixth is refused, and after.
    assert outcomes[:5] == [0] * 5
    assert set(outcomes[5:]) == {1}
    assert cli.ok("guard", "status", str(operator_id(ME))).startswith("contained: breadth")


def all_patients(cli: Cli) -> list[uuid.UUID]:
    engine = make_engine(database_url(cli))
    try:
        with engine.connect() as connection:
            return list(connection.scalars(select(Patient.id).order_by(Patient.id)))
    finally:
        engine.dispose()
