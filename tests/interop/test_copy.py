"""What a copy of the database shows of an imported account that was never activated,
beside a patient who registered and verified their address, on SQLite and PostgreSQL:
the raw rows (read with SQL, as whoever holds a dump would) have the same columns set
and empty, and the same lengths, in ``accounts`` and ``patients``. The one column
that still differs, on purpose, is ``email_verified_at`` (docs/INTEROP.md says why).

Before imported accounts held a placeholder hash, their ``password_hash`` was NULL:
a copy listed every imported account that was never activated."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from sqlalchemy import text

from tests.consultations.helpers import Api
from tests.identity.helpers import fast_password_hashing
from tests.interop.test_import import Importer, csv_row, write_csv

#: Differs between the two, on purpose: an imported address is not proven until its
#: owner follows the invitation (support sees "unverified").
KNOWN = {"email_verified_at"}


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    """What a copy shows of a row beyond its values: which columns are empty, and how
    long the others are (sealed values are padded to buckets)."""
    shape: dict[str, Any] = {}
    for column, value in row.items():
        if value is None:
            shape[column] = None
        elif isinstance(value, bytes | memoryview | str):
            shape[column] = len(bytes(value) if isinstance(value, memoryview) else value)
        else:
            shape[column] = "set"
    return shape


def _register(api: Api) -> None:
    body = {
        "given_names": "Lucie Anne",
        "family_name": "MartinZ",
        "birth_date": "1985-06-14",
        "sex": "F",
        "email": "registered@example.org",
        "phone": "+33 6 12 34 99 99",
        "address": {"line1": "99 rue des Lilas", "postal_code": "75011", "city": "Paris"},
        "password": "une phrase de passe assez longue 42",
    }
    with fast_password_hashing():
        answer = api.client.post("/api/v1/auth/register", json=body)
    assert answer.status_code == 202, answer.text
    (sent,) = sorted(api.settings.outbox_dir.glob("*.eml"))
    message = message_from_bytes(sent.read_bytes(), policy=policy.default)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    match = re.search(r"[?#]token=([A-Za-z0-9_\-]+)", part.get_content())
    assert match is not None
    verified = api.client.post("/api/v1/auth/verify-email", json={"token": match.group(1)})
    assert verified.status_code == 204, verified.text


def test_a_copy_does_not_tell_an_imported_account_from_a_registered_one(
    api: Api, tmp_path: Path
) -> None:
    _register(api)
    importer = Importer(api)
    importer.run(write_csv(tmp_path / "one.csv", [csv_row(1)]), "csv")

    with api.store.engine.connect() as connection:
        accounts = [
            dict(row)
            for row in connection.execute(
                text("SELECT * FROM accounts WHERE role = 'patient' ORDER BY created_at")
            ).mappings()
        ]
        patients = [
            dict(row) for row in connection.execute(text("SELECT * FROM patients")).mappings()
        ]
    assert len(accounts) == 2
    assert len(patients) == 2
    registered, imported = (_shape(a) for a in accounts)
    assert imported["password_hash"] is not None  # NULL before: the giveaway
    differ = {c for c in registered if registered[c] != imported[c]}
    assert differ == KNOWN, {c: (registered[c], imported[c]) for c in differ}
    assert accounts[0]["status"] == accounts[1]["status"] == "active"
    first, second = (_shape(p) for p in patients)
    assert first == second
