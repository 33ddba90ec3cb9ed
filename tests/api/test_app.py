"""The FastAPI application through an HTTP client: health, OpenAPI, problem details,
security headers, and a start that fails closed."""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import inspect, update

from hippocrate.app import create_app
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.db.engine import make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import current_revision, upgrade
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.keyring.service import KEYRING
from hippocrate.patients.service import create_patient
from hippocrate.runtime import NotInitialised, Runtime
from hippocrate.vault import KeyProviderError, Vault
from hippocrate.vault.providers.file import FileKeyProvider
from tests.conftest import Store
from tests.identity.helpers import patient_data

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its TestClient; the warning concerns the test
    # tool, not the application, and httpx is what the project pins.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

PROBLEM_JSON = "application/problem+json"
ONE_YEAR = 365 * 24 * 3600


def settings_for(data_dir: Path, database_url: str | None = None, **changes: Any) -> Settings:
    """Settings naming everything, so no HIPPOCRATE_ variable of the caller leaks in."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        key_provider=KeyProviderKind.FILE,
        key_file=None,
        **{"redis_url": None, **changes},
    )


def app_on(store: Store, tmp_path: Path, **changes: Any) -> FastAPI:
    """The app on a migrated store and a vault on a fresh key file."""
    settings = settings_for(tmp_path, store.url, **changes)
    return create_app(runtime=Runtime(settings, store.sessions))


@pytest.fixture
def client(sqlite_store: Store, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_on(sqlite_store, tmp_path)) as client:
        yield client


def assert_security_headers(headers: httpx.Headers) -> None:
    csp = headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'none'"], csp
    assert directives.get("script-src") == ["'self'"], csp
    assert directives.get("base-uri") == ["'self'"], csp
    assert directives.get("frame-ancestors") == ["'none'"], csp
    hsts = headers.get("strict-transport-security", "")
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age is not None, hsts
    assert int(max_age.group(1)) >= ONE_YEAR, hsts
    assert headers.get("cache-control") == "no-store"
    assert headers.get("x-content-type-options") == "nosniff"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """An RFC 9457 problem whose body repeats the HTTP status."""
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    return body


# -- what a client sees ------------------------------------------------------------------


def test_health_says_ok(store: Store, tmp_path: Path) -> None:
    with TestClient(app_on(store, tmp_path)) as client:
        response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "key_provider": "ok",
        "guard": "ok",
        "root_key_version": "1",
        "records": "ok",
        "chainer": "ok",
        "job_queue": "ok",
    }


def test_health_is_503_when_records_cannot_be_opened(store: Store, tmp_path: Path) -> None:
    """A data key wrapped under a root version the provider does not hold (retired too
    early, or a key file from another deployment): records would answer 503, so health
    must not say ok."""
    with store.sessions.begin() as session:
        create_patient(session=session, data=patient_data())
    with TestClient(app_on(store, tmp_path)) as client:
        assert client.get("/api/v1/health").status_code == 200
        with store.engine.begin() as connection:
            connection.execute(update(DataKeyRecord).values(root_version=7))
        # Readiness answers from a result at most a second old (ops/readiness.py).
        deadline = time.monotonic() + 3
        while (response := client.get("/api/v1/health")).status_code == 200:
            assert time.monotonic() < deadline, "health still says ok"
            time.sleep(0.05)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["failing"] == "key_provider, records"
    assert body["key_provider"] == "root key version 7 is not held"


def test_health_is_503_when_the_guard_state_is_down(sqlite_store: Store, tmp_path: Path) -> None:
    with TestClient(app_on(sqlite_store, tmp_path, redis_url="redis://127.0.0.1:1/0")) as client:
        response = client.get("/api/v1/health")

    assert response.status_code == 503
    # The notice queue is on the same Redis: down too.
    assert (response.json()["failing"], response.json()["guard"]) == (
        "guard, job_queue",
        "unavailable",
    )


def test_openapi_document_lists_the_health_route(client: TestClient) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert re.fullmatch(r"3\.\d+\.\d+", document["openapi"])
    assert document["info"]["title"] == "Hippocrate"
    assert document["info"]["version"]
    assert "get" in document["paths"]["/api/v1/health"]
    assert "200" in document["paths"]["/api/v1/health"]["get"]["responses"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/no/such/route"),
        ("DELETE", "/api/v1/health"),
    ],
)
def test_every_response_carries_the_security_headers(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path)

    assert_security_headers(response.headers)


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/no-such-thing")

    body = assert_problem(response, 404)
    assert body["title"] == "Not Found"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.post("/api/v1/health")

    body = assert_problem(response, 405)
    assert body["title"] == "Method Not Allowed"


def test_wrong_method_says_which_methods_are_allowed(client: TestClient) -> None:
    response = client.post("/api/v1/health")

    assert response.status_code == 405
    assert "GET" in response.headers.get("allow", "")


def test_a_server_error_still_carries_the_security_headers(tmp_path: Path, vault: Vault) -> None:
    # The database goes away under a running server: its folder no longer exists.
    engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'hippocrate.db'}")
    runtime = Runtime(
        settings_for(tmp_path),
        unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="tests of the layers below the entry points"
        ),
    )
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        health = client.get("/api/v1/health")
        response = client.post(
            "/api/v1/auth/login", json={"email": "a@example.org", "password": "x" * 12}
        )
    engine.dispose()

    # The guard keeps its state in the database here: it is down with it.
    assert (health.status_code, health.json()["failing"]) == (503, "database, records, guard")
    assert response.status_code == 500
    assert_security_headers(response.headers)


def test_no_docs_page_that_the_csp_would_break(client: TestClient) -> None:
    """Swagger UI needs a CDN and inline scripts, which the CSP forbids: not served."""
    assert client.get("/api/v1/docs").status_code == 404


# -- starting the server fails closed --------------------------------------------------


def _initialised(data_dir: Path) -> Settings:
    """A data folder as ``hippocrate init`` leaves it (key file and schema)."""
    settings = settings_for(data_dir)
    FileKeyProvider.create(settings.resolved_key_file).close()
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    engine.dispose()
    return settings


def test_the_app_opens_its_own_runtime_and_closes_it_at_shutdown(tmp_path: Path) -> None:
    app = create_app(settings=_initialised(tmp_path / "var"))

    with TestClient(app) as client:
        assert client.get("/api/v1/health").json()["status"] == "ok"

    # At shutdown the key provider forgets the root keys.
    with pytest.raises(KeyProviderError, match="closed"):
        app.state.runtime.sessions.vault.provider.versions()


def test_start_refused_without_key_file(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "var")

    with pytest.raises(KeyProviderError, match="does not exist"):
        create_app(settings=settings)

    assert not (tmp_path / "var" / "hippocrate.db").exists()


def test_start_refused_with_key_file_readable_by_others(tmp_path: Path) -> None:
    settings = _initialised(tmp_path / "var")
    settings.resolved_key_file.chmod(0o644)

    with pytest.raises(KeyProviderError, match="0600"):
        create_app(settings=settings)


def test_start_refused_on_database_without_schema(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "var")
    FileKeyProvider.create(settings.resolved_key_file).close()

    with pytest.raises(NotInitialised, match="hippocrate init"):
        create_app(settings=settings)

    engine = make_engine(settings.resolved_database_url)
    try:
        assert current_revision(engine) is None
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
