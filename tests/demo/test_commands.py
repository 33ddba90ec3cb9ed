"""``hippocrate seed`` and ``hippocrate accounts``, run as a user runs them (the console
script in a subprocess, production password hashing), then checked through the API."""

from __future__ import annotations

import json
import re
import uuid
import warnings
from pathlib import Path
from typing import Any

from hippocrate.app import create_app
from hippocrate.config import KeyProviderKind, Settings
from hippocrate.runtime import Runtime
from tests.cli.test_cli import Cli, assert_one_line_error, mode
from tests.conftest import Store
from tests.demo.helpers import seed
from tests.identity.helpers import bearer, enrol_totp, fast_password_hashing, new_password

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient


def _credentials(cli: Cli) -> dict[str, Any]:
    path = cli.data_dir / "demo-credentials.json"
    assert mode(path) == 0o600
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def _who(credentials: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """What a seed decides: everyone's role and email, practitioners' names and RPPS."""
    return {
        "patients": [(p["email"],) for p in credentials["patients"]],
        "practitioners": [
            (p["email"], p["name"], p["specialty"], p["rpps"]) for p in credentials["practitioners"]
        ],
        "staff": [(s["role"], s["email"]) for s in credentials["staff"]],
    }


def test_seed_is_reproducible_and_says_how_to_sign_in(tmp_path: Path, sqlite_store: Store) -> None:
    first, second = Cli(tmp_path / "a"), Cli(tmp_path / "b")
    outputs = []
    for cli in (first, second):
        cli.home.mkdir()
        cli.ok("init")
        outputs.append(cli.ok("seed", "--patients", "3", "--seed", "11"))
    a, b = _credentials(first), _credentials(second)

    assert _who(a) == _who(b)
    # The same seed in this process gives the same people too; another seed, others.
    same, _ = seed(sqlite_store, tmp_path / "same", count=3, seed=11)
    assert _who(same.credentials()) == _who(a)
    other, _ = seed(sqlite_store, tmp_path / "other", count=3, seed=12)
    assert _who(other.credentials())["patients"] != _who(a)["patients"]
    assert _who(other.credentials())["practitioners"] != _who(a)["practitioners"]
    # Credentials are never reproducible: a published seed gives no password.
    assert {p["password"] for p in a["patients"]}.isdisjoint(p["password"] for p in b["patients"])
    assert a["staff"][0]["totp_secret"] != b["staff"][0]["totp_secret"]

    out = outputs[0]
    assert "3 patients created" in out
    assert "12 practitioners in 6 specialties, 2 admin, 1 support, 2 dpo" in out
    every_status = r"[1-9]\d* requested, [1-9]\d* in progress, [1-9]\d* closed, [1-9]\d* cancelled"
    assert re.search(rf"consultations: {every_status}", out)
    assert "/sign-in and sign in as one of these demo accounts" in out
    for role in ("patient", "practitioner", "DPO", "administrator"):
        assert re.search(rf"^  {role} +\S+@", out, re.MULTILINE), (role, out)
    for entry in (*a["patients"], *a["practitioners"], *a["staff"]):
        assert entry["password"] not in out
        assert not entry["totp_secret"] or entry["totp_secret"] not in out

    # Asked for one account, the command gives its password and a code that signs in.
    doctor = a["practitioners"][0]
    told = first.ok("demo-account", doctor["email"])
    assert f"password: {doctor['password']}" in told
    assert re.search(r"^code: +\d{6} ", told, re.MULTILINE), told
    assert_one_line_error(first.run("demo-account", "nobody@example.org"))

    # Seeding the same people again is refused in one line, and changes nothing.
    blobs = sorted(p.name for p in (first.data_dir / "blobs").rglob("*") if p.is_file())
    again = first.run("seed", "--patients", "3", "--seed", "11")
    assert_one_line_error(again, "already uses this")
    assert _credentials(first) == a
    assert sorted(p.name for p in (first.data_dir / "blobs").rglob("*") if p.is_file()) == blobs


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in {text!r}"
    return match[1]


def _api_on(cli: Cli) -> tuple[TestClient, Runtime]:
    """The app, in this process, on the data folder the command line used."""
    settings = Settings(
        data_dir=cli.data_dir,
        database_url=None,
        key_provider=KeyProviderKind.FILE,
        key_file=None,
        smtp_host=None,
        redis_url=None,
    )
    runtime = Runtime.open(settings)
    return TestClient(create_app(runtime=runtime)), runtime


def test_create_admin_then_the_setup_token_flow_end_to_end_and_refusals(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.ok("init")
    email = "Premiere.Admin@Example.org"

    out = cli.ok("accounts", "create-admin", "--email", email)

    account_id = uuid.UUID(_found(r"admin account ([0-9a-f-]{36}) created", out))
    token = _found(r"setup token \(single use, valid until [^)]*\):\n  (\S+)\n", out)
    assert "/api/v1/auth/password-reset/complete" in out
    assert "/api/v1/me/totp" in out
    listed = cli.ok("accounts", "list")
    assert re.search(rf"{account_id}\s+admin\s+active\s+no\b", listed)
    # The admin, and the accounts of the 3 honeytoken patients init planted (patients
    # like any other: each has an account).
    assert "4 accounts" in listed
    assert "premiere" not in listed.lower()

    password = new_password()
    client, runtime = _api_on(cli)
    try:
        with fast_password_hashing(), client:
            # Without a password, no sign-in; the token sets one, once.
            refused = client.post(
                "/api/v1/auth/login", json={"email": email.lower(), "password": password}
            )
            assert refused.status_code == 401
            done = client.post(
                "/api/v1/auth/password-reset/complete",
                json={"token": token, "password": password},
            )
            assert done.status_code == 204, done.text
            again = client.post(
                "/api/v1/auth/password-reset/complete",
                json={"token": token, "password": new_password()},
            )
            assert again.status_code == 400
            # First sign-in: only a second factor can be enrolled, then a full session.
            answer = client.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            ).json()
            assert answer["mfa_required"] is True
            assert answer["mfa_setup_required"] is True
            pending = bearer(answer["token"])
            assert client.get("/api/v1/support/accounts", headers=pending).status_code == 401
            enrolled = enrol_totp(client, pending)
            assert len(enrolled.recovery_codes) == 10
            me = client.get("/api/v1/me", headers=enrolled.headers).json()
            assert me["role"] == "admin"
            created = client.post(
                "/api/v1/admin/staff",
                json={"role": "support", "email": "support.bootstrap@example.org"},
                headers=enrolled.headers,
            )
            assert created.status_code == 202, created.text  # awaits a second admin
    finally:
        runtime.close()

    listed = cli.ok("accounts", "list", "--role", "admin")
    assert re.search(rf"{account_id}\s+admin\s+active\s+yes\b", listed)
    assert "@" not in listed
    assert "support" not in listed
    assert "5 accounts" in cli.ok("accounts", "list")  # and the 3 honeytokens

    # Refusals are one line, exit 1, and create nothing.
    duplicate = cli.run("accounts", "create-admin", "--email", email.upper())
    assert_one_line_error(duplicate, "already uses this email address")
    assert duplicate.out == ""
    assert_one_line_error(cli.run("accounts", "create-admin", "--email", "nobody"), "email")
    assert "5 accounts" in cli.ok("accounts", "list")  # and the 3 honeytokens
