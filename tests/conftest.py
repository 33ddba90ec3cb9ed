"""Shared fixtures: a vault on a fresh key file, and stores on SQLite and PostgreSQL.

PostgreSQL is the server at ``HIPPOCRATE_TEST_POSTGRES_URL`` (default: the CI one,
postgres@127.0.0.1:5432/test). Each xdist worker gets a database of its own; each test a
freshly migrated schema. Without a server the PostgreSQL cases skip, except under CI,
where a missing server fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from hippocrate.db.engine import SessionFactory, make_engine, unsafe_unaudited_sessions
from hippocrate.db.migrate import upgrade
from hippocrate.keyring.service import KEYRING
from hippocrate.vault import Vault
from hippocrate.vault.documents import create_document_signing_key
from hippocrate.vault.providers.file import FileKeyProvider

POSTGRES_URL = os.environ.get(
    "HIPPOCRATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
# Units of work chain their events right after each commit (no chainer thread), so a
# test reads the chain as soon as a request has answered; the tests of the chainer
# (tests/audit/test_chainer.py) run it, in real server processes too.
os.environ.setdefault("HIPPOCRATE_AUDIT_CHAIN_SECONDS", "0")

# CI runs the same examples every time (a red CI is a reproducible one); developers'
# runs explore new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set: PostgreSQL tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def english_test_clients() -> Iterator[None]:
    """Every HTTP client of the suite (``TestClient`` is an ``httpx.Client``, and the
    tests against server processes use ``httpx.Client``) asks for English
    (``Accept-Language: en``) unless its test says otherwise: the API answers French by
    default, and the suite's assertions on ``title`` and ``detail`` were written against
    the code's English messages, which stay the reference text. tests/api/test_languages.py
    checks the French default by removing the header (``del client.headers[...]``) and
    the languages on request; a test may pass ``headers={"Accept-Language": ...}``."""
    original = httpx.Client.__init__

    def asking_for_english(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        headers = httpx.Headers(kwargs.pop("headers", None))
        headers.setdefault("Accept-Language", "en")
        original(self, *args, headers=headers, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.Client, "__init__", asking_for_english)
        yield


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_database(worker_id: str) -> Iterator[str]:
    """A database of this worker's own on the PostgreSQL server; its URL."""
    # Unique per process: concurrent test runs on one server never share a database.
    name = f"hippocrate_test_{worker_id}_{os.getpid()}".replace("-", "_")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        _unavailable(f"no PostgreSQL server at {POSTGRES_URL}: {str(exc.orig).splitlines()[0]}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def document_signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One document signing key for every test's settings (``hippocrate init`` makes a
    deployment's own): tests that build ``Settings`` by hand name no key file, so this
    one, through the environment, signs what their consultations close with. Tests of
    the key file itself name theirs."""
    path = tmp_path_factory.mktemp("document-signing") / "document-signing.key"
    create_document_signing_key(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE", str(path))
        yield path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return FileKeyProvider.create(tmp_path / "keys" / "root.key")._path


@pytest.fixture
def vault(key_file: Path) -> Iterator[Vault]:
    vault = Vault(FileKeyProvider(key_file))
    yield vault
    vault.close()


@dataclass
class Store:
    """A migrated database, its engine and a session factory bound to a vault."""

    backend: str
    url: str
    engine: Engine
    sessions: SessionFactory
    path: Path | None = None  # the SQLite file


def _fresh_postgres(url: str) -> Engine:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, vault: Vault) -> Iterator[Store]:
    """A freshly migrated store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "hippocrate.db"
        url = f"sqlite:///{path}"
        engine = make_engine(url)
    else:
        path = None
        url = request.getfixturevalue("postgres_database")
        engine = _fresh_postgres(url)
    upgrade(engine)
    yield Store(
        request.param,
        url,
        engine,
        unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="tests of the layers below the entry points"
        ),
        path,
    )
    engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path, vault: Vault) -> Iterator[Store]:
    """A freshly migrated SQLite store, for tests where the backend does not matter."""
    path = tmp_path / "hippocrate.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    yield Store(
        "sqlite",
        url,
        engine,
        unsafe_unaudited_sessions(
            engine, vault, KEYRING, why="tests of the layers below the entry points"
        ),
        path,
    )
    engine.dispose()
