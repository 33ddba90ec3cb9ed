"""Backup and restore (docs/BACKUP.md): a deployment's database and its key material,
backed up apart and restored together into a fresh data folder, give every patient back,
decrypted and equal, and the restored deployment signs its patients in; the database
restored alone (a fresh ``init`` making new keys) gives ciphertext only: every read
fails closed with the vault's one error, nothing decrypts, nobody signs in.

On SQLite (the online backup API, as ``sqlite3 .backup`` does) and on PostgreSQL
(``pg_dump`` and ``pg_restore``)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select, text

from hippocrate.app import create_app
from hippocrate.audit.recorder import Actor
from hippocrate.blobs import FileBlobStore
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.db.engine import unsafe_unaudited_sessions
from hippocrate.demo.seed import SeedReport, seed_demo
from hippocrate.keyring.rotation import sealed_models
from hippocrate.keyring.service import KEYRING
from hippocrate.runtime import Runtime
from hippocrate.tags import Purpose
from hippocrate.vault import VaultError
from hippocrate.work import unit_of_work
from tests.identity.helpers import fast_password_hashing

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

HIPPOCRATE = str(Path(sys.executable).parent / "hippocrate")

#: The key material of the key file provider: never in the database's backup.
KEY_FILES = ("root.key", "document-signing.key")

Values = dict[tuple[str, str, str], Any]


@dataclass
class Deployment:
    """A deployment of its own: a data folder (key file, document signing key, blob
    folder, SQLite database unless ``database_url`` names a PostgreSQL one)."""

    home: Path
    database_url: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "var"

    @property
    def settings(self) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            database_url=self.database_url,
            key_provider=KeyProviderKind.FILE,
            key_file=None,
            document_signing_key_file=self.data_dir / "document-signing.key",
            smtp_host=None,
            redis_url=None,
            audit_checkpoint_seconds=0,
        )

    @property
    def sqlite_file(self) -> Path:
        return self.data_dir / "hippocrate.db"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
        chosen = {
            "HIPPOCRATE_DATA_DIR": str(self.data_dir),
            "HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE": str(self.data_dir / "document-signing.key"),
        }
        if self.database_url:
            chosen["HIPPOCRATE_DATABASE_URL"] = self.database_url
        return {**inherited, **chosen}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [HIPPOCRATE, *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done


def seed(deployment: Deployment) -> SeedReport:
    """Patients with accounts and consultations in every status (messages, attachments,
    reports), through the real services, in the platform's unit of work."""
    rt = Runtime.open(deployment.settings)
    try:
        with (
            fast_password_hashing(),
            unit_of_work(rt, Actor(role="operator", purpose=Purpose.DEMO_SEED)) as session,
        ):
            return seed_demo(
                session=session,
                settings=rt.settings,
                blobs=FileBlobStore(rt.settings.blob_dir),
                count=6,
                seed=1313,
                now=datetime.now(UTC),
            )
    finally:
        rt.close()


def read_everything(deployment: Deployment) -> Values:
    """Every sealed field of every row, opened: (table, row id, field) -> value. Read
    without the trail (the test's own synthetic deployment)."""
    rt = Runtime.open(deployment.settings)
    sessions = unsafe_unaudited_sessions(
        rt.sessions.engine, rt.sessions.vault, KEYRING, why="the backup test reads itself back"
    )
    found: Values = {}
    try:
        with sessions() as session:
            for model in sealed_models():
                for row in session.scalars(select(model)):
                    for name in type(row).__sealed_fields__:
                        key = (model.__tablename__, str(row.id), name)  # type: ignore[attr-defined]
                        found[key] = getattr(row, name)
    finally:
        rt.close()
    return found


def open_each(deployment: Deployment, values: Values) -> tuple[int, set[str]]:
    """Try to open every value of ``values`` that is set, in ``deployment``: how many
    opened, and the errors (their class and the start of their message)."""
    models = {m.__tablename__: m for m in sealed_models()}  # type: ignore[attr-defined]
    rows: dict[tuple[str, str], list[str]] = {}
    for (table, row_id, name), value in values.items():
        if value is not None:
            rows.setdefault((table, row_id), []).append(name)
    rt = Runtime.open(deployment.settings)
    sessions = unsafe_unaudited_sessions(
        rt.sessions.engine, rt.sessions.vault, KEYRING, why="the backup test reads itself back"
    )
    opened = 0
    errors: set[str] = set()
    try:
        for (table, row_id), names in rows.items():
            with sessions() as session:
                row = session.get(models[table], uuid.UUID(row_id))
                assert row is not None, (table, row_id)  # the rows are all there
                for name in names:
                    try:
                        getattr(row, name)
                    except VaultError as exc:
                        errors.add(f"{type(exc).__name__}: {str(exc)[:60]}")
                    else:
                        opened += 1
    finally:
        rt.close()
    return opened, errors


# -- the backup and the restore -------------------------------------------------------------


def back_up_database(deployment: Deployment, into: Path) -> Path:
    """The database's backup (and the blob folder, sealed under the database's data
    keys): what goes to the database's backup store."""
    into.mkdir(parents=True)
    if deployment.database_url is None:
        target = into / "hippocrate.db"
        source = sqlite3.connect(deployment.sqlite_file)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # consistent while the server writes (WAL included)
        finally:
            copy.close()
            source.close()
    else:
        target = into / "hippocrate.pgdump"
        _pg(["pg_dump", "--format=custom", "--no-owner", f"--file={target}"], deployment)
    shutil.copytree(deployment.settings.blob_dir, into / "blobs")
    return target


def back_up_keys(deployment: Deployment, into: Path) -> None:
    """The key material: the root key file (root keys, index key, audit signing key)
    and the document signing key; to a store of its own, never beside the database's."""
    into.mkdir(parents=True, mode=0o700)
    for name in KEY_FILES:
        shutil.copy2(deployment.data_dir / name, into / name)  # 0600 kept


def restore_database(backup: Path, deployment: Deployment) -> None:
    deployment.data_dir.mkdir(parents=True, mode=0o700)
    if deployment.database_url is None:
        shutil.copy2(backup, deployment.sqlite_file)
    else:
        _pg(["pg_restore", "--no-owner", "--exit-on-error", str(backup)], deployment)
    shutil.copytree(backup.parent / "blobs", deployment.settings.blob_dir)


def restore_keys(backup: Path, deployment: Deployment) -> None:
    for name in KEY_FILES:
        shutil.copy2(backup / name, deployment.data_dir / name)


def _pg(command: list[str], deployment: Deployment) -> None:
    url = make_url(deployment.database_url or "")
    subprocess.run(
        [
            *command,
            f"--host={url.host or '127.0.0.1'}",
            f"--port={url.port or 5432}",
            f"--username={url.username or 'postgres'}",
            f"--dbname={url.database}",
        ],
        check=True,
        capture_output=True,
        env={"PGPASSWORD": url.password or "", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(
    request: pytest.FixtureRequest, postgres_admin_url: str
) -> Iterator[list[str | None]]:
    """Three databases, for the deployment, its full restore and its database-only one:
    SQLite files in each data folder, or three PostgreSQL databases of their own."""
    if request.param == "sqlite":
        yield [None, None, None]
        return
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are needed for the PostgreSQL backup test")
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    names = [f"hippocrate_backup_{uuid.uuid4().hex[:10]}_{i}" for i in range(3)]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"no PostgreSQL server for the backup test: {exc}")
    yield [admin.url.set(database=name).render_as_string(hide_password=False) for name in names]
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _sign_in(deployment: Deployment, email: str, password: str) -> tuple[int, dict[str, Any]]:
    """Sign in through the API of the deployment; the answer of /api/v1/patients/me."""
    rt = Runtime.open(deployment.settings)
    try:
        with fast_password_hashing(), TestClient(create_app(runtime=rt)) as client:
            login = client.post("/api/v1/auth/login", json={"email": email, "password": password})
            if login.status_code != 200:
                return login.status_code, {}
            me = client.get(
                "/api/v1/patients/me",
                headers={"Authorization": f"Bearer {login.json()['token']}"},
            )
            return me.status_code, me.json()
    finally:
        rt.close()


def _readiness(deployment: Deployment) -> tuple[int, dict[str, Any]]:
    rt = Runtime.open(deployment.settings)
    try:
        with TestClient(create_app(runtime=rt)) as client:
            answer = client.get("/api/v1/health/ready")
            return answer.status_code, answer.json()
    finally:
        rt.close()


@pytest.mark.slow
def test_database_and_keys_restore_everything_and_the_database_alone_nothing(
    tmp_path: Path, databases: list[str | None]
) -> None:
    original = Deployment(tmp_path / "site", databases[0])
    original.home.mkdir()
    original.run("init")
    report = seed(original)
    before = read_everything(original)
    assert sum(1 for (table, _, _) in before if table == "patients") > 6 * 5
    assert any(table == "messages" for (table, _, _) in before)

    database_backup = back_up_database(original, tmp_path / "backups" / "database")
    back_up_keys(original, tmp_path / "backups" / "keys")
    # The database's backup holds none of the key material (nor its base64).
    root = json.loads((original.data_dir / "root.key").read_text())
    secrets = [root["index"], root["audit"], *root["root"].values()]
    secrets = [base64.b64decode(v) for v in secrets]
    held = b"".join(p.read_bytes() for p in database_backup.parent.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in held
        assert base64.b64encode(secret) not in held

    # Database and keys, restored together into a fresh data folder: everything back.
    restored = Deployment(tmp_path / "restored", databases[1])
    restored.home.mkdir()
    restore_database(database_backup, restored)
    restore_keys(tmp_path / "backups" / "keys", restored)
    status = restored.run("keys", "status").stdout
    assert "current root key version: 1" in status
    after = read_everything(restored)
    assert after == before
    patient = next(p for p in report.patients if not p.totp_secret)
    answered, me = _sign_in(restored, patient.email, patient.password)
    assert answered == 200
    assert me["email"] == patient.email
    assert _readiness(restored)[0] == 200

    # The database alone, with the keys a fresh init makes: ciphertext only.
    alone = Deployment(tmp_path / "alone", databases[2])
    alone.home.mkdir()
    restore_database(database_backup, alone)
    alone.run("init")  # new root key file, new index key, new signing keys
    assert (alone.data_dir / "root.key").read_bytes() != (
        original.data_dir / "root.key"
    ).read_bytes()
    opened, errors = open_each(alone, before)
    assert opened == 0  # of every value set, in every row (all restored)
    assert errors
    assert all(e.startswith(("DecryptionError", "UnknownKeyVersion")) for e in errors), errors
    # The keys restored beside it open the same values: the failure is the keys'.
    assert open_each(restored, before) == (sum(v is not None for v in before.values()), set())
    # Nobody signs in: the login's blind index is keyed by the lost index key.
    answered, _ = _sign_in(alone, patient.email, patient.password)
    assert answered == 401
    # Readiness says so: the newest data key does not unwrap.
    ready, body = _readiness(alone)
    assert ready == 503
    assert "records" in body["failing"]
