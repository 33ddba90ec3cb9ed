"""Structured logs: one JSON object per line from every logger, the request's context on
each (id, route template, role, account id, status), and nothing personal: a workload
(registration, sign-in, a consultation with messages, refusals) leaves none of the
values it used in the lines; the allow-list drops any key it does not know."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hippocrate import logs
from hippocrate.app import create_app
from hippocrate.config import Settings
from hippocrate.identity.models import Role
from hippocrate.runtime import Runtime
from tests.cli.test_cli import Cli
from tests.conftest import Store
from tests.consultations.helpers import QUESTIONNAIRE
from tests.identity.conftest import Env, link_token, settings_for
from tests.identity.helpers import fast_password_hashing, login, make_user, patient_data
from tests.plaintext import find_in, spellings_of_patient, spellings_of_texts

PASSWORD = "lanterne-violette-sous-la-pluie"
SUBJECT = "Vertiges au lever depuis la chute de vélo"
DESCRIPTION = "Une bosse derrière l'oreille gauche et des nausées le matin"
MESSAGES = [
    "Avez-vous perdu connaissance au moment de la chute ?",
    "Non, mais je ne me souviens plus du trajet jusqu'à la maison",
]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def with_request_logs(app: FastAPI) -> FastAPI:
    """The app with the request middleware, if the factory does not install it yet."""
    installed: list[object] = [m.cls for m in app.user_middleware]
    if logs.RequestLogMiddleware not in installed:
        app.add_middleware(logs.RequestLogMiddleware)
    return app


@contextmanager
def captured(fmt: logs.Format = "json") -> Iterator[io.StringIO]:
    """Every logger of the process, at every level, through the handler ``configure``
    installs, into a buffer."""
    out = io.StringIO()
    root = logging.getLogger()
    added = logs.handler(fmt, out)
    level = root.level
    root.addHandler(added)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(added)
        root.setLevel(level)


@contextmanager
def running(store: Store, tmp_path: Path) -> Iterator[Env]:
    settings = settings_for(tmp_path, store)
    app = with_request_logs(create_app(runtime=Runtime(settings, store.sessions)))
    with fast_password_hashing(), TestClient(app) as client:
        yield Env(client, app, store, settings)


def workload(env: Env) -> tuple[dict[str, set[str]], dict[str, Any]]:
    """Register, confirm, sign in, open a consultation, exchange messages, be refused;
    the values used (to search for) and the ids seen."""
    data = patient_data(with_nir=True)
    body = data.model_dump(mode="json") | {"password": PASSWORD}
    assert env.client.post("/api/v1/auth/register", json=body).status_code == 202
    [message] = env.emails_to(data.email)
    token = link_token(message)
    assert env.client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    wrong = env.post_login(data.email, "not-the-password-at-all")
    assert wrong.status_code == 401
    patient = login(env.client, data.email, PASSWORD)

    doctor = make_user(env.store.sessions, Role.PRACTITIONER)
    gp = login(env.client, doctor.email, doctor.password, doctor.totp_secret)
    opened = env.client.post(
        "/api/v1/consultations",
        headers=patient,
        json={
            "specialty": "general-practice",
            "subject": SUBJECT,
            "description": DESCRIPTION,
            "questionnaire": QUESTIONNAIRE,
        },
    )
    assert opened.status_code == 201, opened.text
    consultation = opened.json()["id"]
    assert env.client.post("/api/v1/queue/take", headers=gp).status_code == 200
    for who, text in ((gp, MESSAGES[0]), (patient, MESSAGES[1])):
        sent = env.client.post(
            f"/api/v1/consultations/{consultation}/messages", headers=who, json={"body": text}
        )
        assert sent.status_code == 201, sent.text
    read = env.client.get(f"/api/v1/consultations/{consultation}", headers=patient)
    assert read.status_code == 200
    missing = env.client.get(f"/api/v1/consultations/{uuid.uuid4()}", headers=patient)
    assert missing.status_code == 404

    secrets = {
        "password": {PASSWORD, doctor.password},
        "token": {token, patient["Authorization"][7:], gp["Authorization"][7:]},
        "doctor_email": {doctor.email},
    }
    spellings = {
        **spellings_of_patient(data),
        **spellings_of_texts(subject=SUBJECT, description=DESCRIPTION, messages=MESSAGES),
        **secrets,
    }
    seen = {
        "consultation": consultation,
        "patient": patient,
        "doctor": doctor,
        "missing_request": missing.headers["X-Request-ID"],
    }
    return spellings, seen


def lines_of(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line]


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_workload_logs_nothing_personal_from_any_logger(
    store: Store, tmp_path: Path, fmt: logs.Format
) -> None:
    with running(store, tmp_path) as env, captured(fmt) as out:
        spellings, _ = workload(env)
    text = out.getvalue()
    assert text.count("\n") > 10  # the workload was logged: a request line each at least
    assert find_in(text.encode("utf-8"), spellings) == []


def test_every_line_is_one_json_object_with_the_request_context(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with running(sqlite_store, tmp_path) as env, captured() as out:
        _, seen = workload(env)
    lines = lines_of(out)
    for line in lines:
        assert {"time", "level", "logger", "event"} <= line.keys(), line
        assert line["time"].endswith("+00:00")
        assert set(line) <= logs.SAFE_KEYS
    requests = [line for line in lines if line["logger"] == "hippocrate.requests"]
    routes = {(r["method"], r["route"], r["status"]) for r in requests}
    assert ("POST", "/api/v1/auth/register", 202) in routes
    assert ("POST", "/api/v1/auth/login", 401) in routes
    assert ("POST", "/api/v1/consultations/{consultation_id}/messages", 201) in routes
    assert ("GET", "/api/v1/consultations/{consultation_id}", 404) in routes
    # The route's template, never the path: no id in any route.
    assert not any(UUID.search(r["route"]) for r in requests)
    assert all(len(r["request_id"]) == 32 for r in requests)
    assert len({r["request_id"] for r in requests}) == len(requests)
    # The id the answer carried (and the audit trail records) is the line's.
    [refused] = [r for r in requests if r["request_id"] == seen["missing_request"]]
    assert (refused["route"], refused["status"]) == ("/api/v1/consultations/{consultation_id}", 404)
    outcomes = {r["status"]: r["outcome"] for r in requests}
    assert (outcomes[201], outcomes[401]) == ("ok", "refused")
    # The principal, once signed in: its role and account id.
    sent = [r for r in requests if r["route"].endswith("/messages")]
    assert {(r["role"], r["account_id"]) for r in sent} >= {
        ("practitioner", str(seen["doctor"].account_id))
    }
    assert {r["role"] for r in sent} == {"practitioner", "patient"}
    anonymous = next(r for r in requests if r["route"] == "/api/v1/auth/register")
    assert "role" not in anonymous
    assert "account_id" not in anonymous


def test_the_allow_list_drops_unknown_keys_and_unsafe_values() -> None:
    """Fail closed: whatever a caller passes, only known keys and safe values print."""
    nir, email, name = "1850575123456", "lea.moreau@example.org", "Léa Moreau"
    with captured() as out:
        logging.getLogger("hippocrate.somewhere").warning(
            "patient %s (%s) not reached: %s, %d tries", name, email, "KeyError", 3
        )
        logs.get_logger("hippocrate.elsewhere").info(
            "looked up", email=email, nir=nir, route="/api/v1/x", done=2
        )
        logging.getLogger("hippocrate.security").warning(
            json.dumps({"event": "guard", "what": "released", "reason": f"asked by {name}"})
        )
        try:
            raise ValueError(f"no patient with NIR {nir}")
        except ValueError:
            logging.getLogger("hippocrate.x").exception("lookup of %s failed", nir)
        logging.getLogger("hippocrate.y").info({"email": email})  # not a template at all
    text = out.getvalue()
    for value in (nir, email, name, "Moreau"):
        assert value not in text
    first, second, guard, failed, odd = lines_of(out)
    assert first["event"] == "patient <redacted> (<redacted>) not reached: KeyError, 3 tries"
    assert (second["route"], second["done"]) == ("/api/v1/x", 2)
    assert second["redacted"] == ["email", "nir"]
    assert (guard["event"], guard["what"], guard["redacted"]) == ("guard", "released", ["reason"])
    assert failed["exception"] == "builtins.ValueError"
    assert failed["stack"]
    assert all(" in " in frame for frame in failed["stack"])
    assert odd["event"] == "<dict>"


def test_the_search_finds_what_a_plain_handler_would_have_written() -> None:
    """The privacy assertions can fail: the same record through the standard library's
    own formatter holds the values the allow-list keeps out."""
    out = io.StringIO()
    plain = logging.StreamHandler(out)
    log = logging.getLogger("hippocrate.somewhere")
    log.addHandler(plain)
    try:
        log.warning("patient %s not reached", "lea.moreau@example.org")
    finally:
        log.removeHandler(plain)
    assert find_in(out.getvalue().encode(), {"email": {"lea.moreau@example.org"}})


def test_configure_picks_the_format_and_replaces_its_own_handler(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        out = io.StringIO()
        assert logs.configure(Settings(log_format="auto"), stream=out) == "json"  # no terminal
        assert logs.configure(Settings(log_format="console"), stream=out) == "console"
        assert logs.configure(Settings(log_format="json"), stream=out) == "json"
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 1  # each call replaced the one before
        logging.getLogger("uvicorn.error").warning("Started server process [%d]", 42)
        [line] = lines_of(out)
        assert (line["logger"], line["event"]) == ("uvicorn.error", "Started server process [42]")
    finally:
        for added in [h for h in root.handlers if h not in before]:
            root.removeHandler(added)
        root.setLevel(level)


def test_serve_logs_every_line_as_json(tmp_path: Path) -> None:
    """The CLI configures the logs for ``serve``: the server's own lines are JSON
    objects, and its access log (raw paths, client addresses) is off."""
    cli = Cli(tmp_path)
    cli.ok("init")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env = {**inherited, "HIPPOCRATE_DATA_DIR": str(cli.data_dir), "HIPPOCRATE_LOG_FORMAT": "json"}
    hippocrate = str(Path(sys.executable).parent / "hippocrate")
    server = subprocess.Popen(
        [hippocrate, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not answer")
        assert answer.status_code == 200
        asked = uuid.uuid4()
        missing = httpx.get(f"http://127.0.0.1:{port}/api/v1/consultations/{asked}")
        assert missing.status_code == 401
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    ours = [line for line in lines if not line.startswith("hippocrate: warning:")]
    parsed = [json.loads(line) for line in ours]  # every other line is one JSON object
    events = {(p["logger"], p["event"]) for p in parsed}
    assert ("uvicorn.error", "Application startup complete.") in events
    assert not any(p["logger"] == "uvicorn.access" for p in parsed)
    assert str(asked) not in err  # no raw path
    (line,) = [p for p in parsed if p["logger"] == "hippocrate.requests" and p["status"] == 401]
    assert line["route"] == "/api/v1/consultations/{consultation_id}"  # its template
