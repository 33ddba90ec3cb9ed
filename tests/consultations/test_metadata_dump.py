"""Issue 8, item 4 (second half): a thief with a copy of the database alone, no keys, who
matched a patient's row, reads from plaintext columns neither the specialties of that
patient's consultations (psychiatry, gynaecology) once they left the queue, nor the
exact instants they were opened, taken, closed or cancelled, nor when each message was
sent, nor the exact size of each file. What stays in plaintext is what
docs/CONSULTATIONS.md ("What the database copy still says") lists, column by column.

Everything is written through the real API, on SQLite and PostgreSQL, then read back
with plain SQL, as the thief reads it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from hippocrate.consultations.schemas import SPECIALTIES
from tests.consultations.helpers import Actor, Api, pdf_bytes, png_bytes

TABLES = ("consultations", "messages", "attachments", "care_relationships")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "CONSULTATIONS.md"
SECTION = "## What the database copy still says"


class Diary:
    """The exact instants of everything done, as the app's clock gave them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.instants: list[datetime] = []
        self.sizes: list[int] = []

    def step(self, actor: Actor) -> Actor:
        # Odd steps (seconds and microseconds), so that no exact instant is a round one
        # that a coarse value could equal by chance.
        self.instants.append(self.api.clock.advance(minutes=3, seconds=17, microseconds=123_457))
        return self.api.relogin(actor)

    def files_of(self, actor: Actor, consultation_id: str) -> None:
        listed = self.api.client.get(
            f"/api/v1/consultations/{consultation_id}/messages", headers=actor.headers
        ).json()["items"]
        self.sizes += [a["size"] for m in listed for a in m["attachments"]]


def play_every_status(api: Api) -> tuple[Diary, dict[str, str]]:
    """One patient, five consultations: closed and in progress (psychiatry and
    gynaecology), cancelled while waiting and once taken, and one still waiting."""
    api.clock.now = api.clock.now.replace(hour=10, minute=0, second=0, microsecond=0)
    diary = Diary(api)
    patient = api.patient()
    psy = api.practitioner("psychiatry", names=("Jeanne", "Moreau"), rpps="10023456781")
    gyn = api.practitioner("gynaecology", names=("Anne", "Roy"), rpps="10034567892")
    report = "PDF bilan thyroidien"
    ids: dict[str, str] = {}

    # Closed: opened with a file, taken, messages both ways with files, closed.
    ids["closed"] = api.open(
        diary.step(patient),
        specialty="psychiatry",
        files=[("bilan.pdf", pdf_bytes(report), "application/pdf")],
    )["id"]
    api.take(diary.step(psy))
    assert api.write(diary.step(psy), ids["closed"], "Depuis quand ?").status_code == 201
    sent = api.write(
        diary.step(patient),
        ids["closed"],
        "Depuis mars.",
        files=[("photo.png", png_bytes("carnet de sommeil"), "image/png")],
    )
    assert sent.status_code == 201, sent.text
    diary.files_of(patient, ids["closed"])
    assert api.close(diary.step(psy), ids["closed"]).status_code == 200

    # In progress.
    ids["in_progress"] = api.open(diary.step(patient), specialty="gynaecology")["id"]
    api.take(diary.step(gyn))
    assert api.write(diary.step(gyn), ids["in_progress"], "Un examen ?").status_code == 201

    # Cancelled while waiting.
    ids["cancelled_waiting"] = api.open(diary.step(patient), specialty="psychiatry")["id"]
    cancel = f"/api/v1/consultations/{ids['cancelled_waiting']}/cancel"
    assert api.client.post(cancel, headers=diary.step(patient).headers).status_code == 200

    # Cancelled once taken.
    ids["cancelled_taken"] = api.open(diary.step(patient), specialty="gynaecology")["id"]
    api.take(diary.step(gyn))
    cancel = f"/api/v1/consultations/{ids['cancelled_taken']}/cancel"
    assert api.client.post(cancel, headers=diary.step(patient).headers).status_code == 200

    # Handed back by its practitioner, then taken by another one.
    gyn2 = api.practitioner("gynaecology", names=("Louise", "Petit"), rpps="10045678903")
    ids["handed_back_taken"] = api.open(diary.step(patient), specialty="gynaecology")["id"]
    api.take(diary.step(gyn))
    assert api.hand_back(diary.step(gyn), ids["handed_back_taken"]).status_code == 200
    assert api.take(diary.step(gyn2))["id"] == ids["handed_back_taken"]

    # Handed back and waiting again: back in the queue, so its specialty and since when
    # are plaintext again (its opening, as for any waiting consultation).
    ids["handed_back_waiting"] = api.open(diary.step(patient), specialty="psychiatry")["id"]
    handed_back_since = diary.instants.pop()  # allowed in plaintext while it waits
    assert api.take(diary.step(psy))["id"] == ids["handed_back_waiting"]
    assert api.hand_back(diary.step(psy), ids["handed_back_waiting"]).status_code == 200

    # Still waiting: the queue needs its specialty and since when, so they stay.
    ids["waiting"] = api.open(diary.step(patient), specialty="psychiatry")["id"]
    waiting_since = diary.instants.pop()  # allowed in plaintext: documented

    # The app still shows everything, exactly, to those who may read it.
    record = api.client.get(
        f"/api/v1/consultations/{ids['closed']}", headers=api.relogin(patient).headers
    ).json()
    assert record["specialty"] == "psychiatry"
    assert datetime.fromisoformat(record["closed_at"]) in diary.instants
    assert datetime.fromisoformat(record["taken_at"]) in diary.instants
    listed = api.client.get("/api/v1/consultations", headers=patient.headers).json()["items"]
    assert [c["id"] for c in listed] == [
        ids[k]
        for k in (
            "waiting",
            "handed_back_waiting",
            "handed_back_taken",
            "cancelled_taken",
            "cancelled_waiting",
            "in_progress",
            "closed",
        )
    ]
    assert {c["specialty"] for c in listed} == {"psychiatry", "gynaecology"}
    assert datetime.fromisoformat(listed[0]["created_at"]) == waiting_since
    assert datetime.fromisoformat(listed[1]["created_at"]) == handed_back_since
    assert all(datetime.fromisoformat(c["created_at"]) in diary.instants for c in listed[2:])
    assert diary.sizes
    assert all(size > 0 for size in diary.sizes)
    return diary, ids


def _instant(value: Any) -> datetime | None:
    """A timestamp as the thief reads it from either database."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d[ T][\d:.]+(\+00:00)?", value):
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return None


def raw_rows(api: Api) -> dict[str, list[dict[str, Any]]]:
    """Every row of the four tables, by plain SQL: no session, no key, no recorder."""
    with api.store.engine.connect() as connection:
        return {
            table: [
                dict(row) for row in connection.execute(text(f"SELECT * FROM {table}")).mappings()
            ]
            for table in TABLES
        }


def test_a_dump_no_longer_links_a_patient_to_specialties_dates_and_sizes(api: Api) -> None:
    diary, ids = play_every_status(api)
    rows = raw_rows(api)
    consultations = {str(row["id"]).replace("-", ""): row for row in rows["consultations"]}
    mine = {name: consultations[cid.replace("-", "")] for name, cid in ids.items()}
    waiting = [mine["waiting"], mine["handed_back_waiting"]]

    # Specialties: only the waiting consultations' are in plaintext, in any column.
    assert [row["specialty"] for row in waiting] == ["psychiatry", "psychiatry"]
    statuses = {name: row["status"] for name, row in mine.items()}
    assert statuses == {
        "closed": "closed",
        "in_progress": "in_progress",
        "cancelled_waiting": "cancelled",
        "cancelled_taken": "cancelled",
        "handed_back_taken": "in_progress",
        "handed_back_waiting": "requested",
        "waiting": "requested",
    }
    assert sorted(name for name, row in mine.items() if row["specialty"]) == [
        "handed_back_waiting",
        "waiting",
    ]
    for table, table_rows in rows.items():
        for row in table_rows:
            if any(row is w for w in waiting):
                continue
            for column, value in row.items():
                if isinstance(value, str):
                    assert value not in SPECIALTIES, (table, column)
                if isinstance(value, bytes | memoryview):
                    assert b"psychiatry" not in bytes(value), (table, column)
                    assert b"gynaecology" not in bytes(value), (table, column)

    # Times: no value of any row says when anything was done, to within a day, even
    # less the care period that a care relationship's end adds to a closing.
    period = timedelta(days=api.settings.care_period_days)
    for table, table_rows in rows.items():
        for row in table_rows:
            for column, value in row.items():
                at = _instant(value)
                if at is None or (
                    any(row is w for w in waiting) and column in ("created_at", "updated_at")
                ):
                    continue
                for offset in (timedelta(0), period):
                    nearest = min(abs(at - offset - instant) for instant in diary.instants)
                    assert nearest >= timedelta(hours=1), (table, column, at, nearest)

    # Sizes: no integer of a file's row is its exact size.
    for row in rows["attachments"]:
        for column, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool):
                assert value not in diary.sizes, (column, value)
    assert {row["size"] for row in rows["attachments"]} <= {1024 * 2**n for n in range(20)}


def documented_columns() -> set[str]:
    section = DOCS.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    names = "|".join(TABLES)
    return set(re.findall(rf"`((?:{names})\.[a-z_]+)`", section))


def test_what_remains_is_what_the_docs_list(api: Api) -> None:
    """Every column of the four tables is in the docs' list (plaintext or sealed, and
    why), and the list names no column that does not exist."""
    with api.store.engine.connect() as connection:
        inspector = inspect(connection)
        columns = {
            f"{table}.{column['name']}"
            for table in TABLES
            for column in inspector.get_columns(table)
        }
    assert documented_columns() == columns
