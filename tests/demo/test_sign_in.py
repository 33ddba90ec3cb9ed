"""The demo credentials file works: signing in through the real API, password then TOTP
code computed from the file's secret, as a seeded practitioner, patients and staff, and
each sees their data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from hippocrate.app import create_app
from hippocrate.demo.seed import write_credentials
from hippocrate.runtime import Runtime
from tests.conftest import Store
from tests.demo.helpers import seed
from tests.identity.helpers import bearer, fast_password_hashing, login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
}


def _first(entries: list[dict[str, Any]], **wanted: Any) -> dict[str, Any]:
    """The first entry with an in-progress consultation matching ``wanted``."""
    return next(
        e
        for e in entries
        if "in_progress" in e["consultations"] and all(e[k] == v for k, v in wanted.items())
    )


def test_seeded_accounts_sign_in_with_the_credentials_file_and_see_their_data(
    sqlite_store: Store, tmp_path: Path
) -> None:
    report, settings = seed(sqlite_store, tmp_path, count=10, seed=21)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = write_credentials(settings.data_dir, report.credentials())
    credentials = json.loads(path.read_text("utf-8"))
    app = create_app(runtime=Runtime(settings, sqlite_store.sessions))

    with fast_password_hashing(), TestClient(app) as client:
        # A practitioner: password, then a TOTP code from the file's secret.
        doctor = _first(credentials["practitioners"])
        refused = client.post(
            "/api/v1/auth/login", json={"email": doctor["email"], "password": "not-the-password"}
        )
        assert refused.status_code == 401
        first = client.post(
            "/api/v1/auth/login",
            json={"email": doctor["email"], "password": doctor["password"]},
        ).json()
        assert first["mfa_required"] is True
        assert first["mfa_setup_required"] is False
        headers = login(client, doctor["email"], doctor["password"], doctor["totp_secret"])

        listed = client.get("/api/v1/consultations?limit=100", headers=headers).json()
        statuses = sorted(c["status"] for c in listed["items"])
        # Everything they took is still in care (recent), except older closed cases.
        assert statuses.count("in_progress") == doctor["consultations"].count("in_progress")
        taken = next(c for c in listed["items"] if c["status"] == "in_progress")
        record = client.get(f"/api/v1/consultations/{taken['id']}", headers=headers).json()
        assert record["practitioner"]["rpps"] == doctor["rpps"]
        assert record["specialty"] == doctor["specialty"]
        messages = client.get(
            f"/api/v1/consultations/{taken['id']}/messages", headers=headers
        ).json()["items"]
        assert {m["author"] for m in messages} == {"patient", "practitioner"}
        files = [a for m in messages for a in m["attachments"]]
        assert files
        download = client.get(f"/api/v1/attachments/{files[0]['id']}", headers=headers)
        assert download.status_code == 200
        assert download.content.startswith(MAGIC[files[0]["media_type"]])
        # Their patient's record, through the care relationship.
        patient = client.get(f"/api/v1/patients/{record['patient_id']}", headers=headers)
        assert patient.status_code == 200

        # A patient without TOTP: the password gives a full session at once.
        plain = _first(credentials["patients"], totp_secret=None)
        answer = client.post(
            "/api/v1/auth/login", json={"email": plain["email"], "password": plain["password"]}
        ).json()
        assert not answer.get("mfa_required")
        own = bearer(answer["token"])
        me = client.get("/api/v1/patients/me", headers=own).json()
        assert (me["id"], me["email"]) == (plain["id"], plain["email"])
        mine = client.get("/api/v1/consultations?limit=100", headers=own).json()["items"]
        assert sorted(c["status"] for c in mine) == plain["consultations"]

        # A patient with TOTP is asked for a code, and gets in with one.
        guarded = next(p for p in credentials["patients"] if p["totp_secret"])
        answer = client.post(
            "/api/v1/auth/login",
            json={"email": guarded["email"], "password": guarded["password"]},
        ).json()
        assert answer["mfa_required"] is True
        headers = login(client, guarded["email"], guarded["password"], guarded["totp_secret"])
        assert client.get("/api/v1/patients/me", headers=headers).json()["id"] == guarded["id"]

        # Support sees account metadata, every seeded account included.
        support = next(s for s in credentials["staff"] if s["role"] == "support")
        headers = login(client, support["email"], support["password"], support["totp_secret"])
        accounts = client.get("/api/v1/support/accounts?limit=100", headers=headers).json()
        assert accounts["total"] == 10 + len(credentials["practitioners"]) + len(
            credentials["staff"]
        )
