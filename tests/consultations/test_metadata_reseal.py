"""Rows written before revision 0008 hold their health metadata in plaintext (a
consultation's specialty and exact instants, messages' times, files' exact sizes):
``hippocrate keys reseal`` seals it, once, and what the app shows stays the same."""

from __future__ import annotations

import signal
import subprocess
from datetime import datetime
from typing import Any

from alembic import command
from sqlalchemy import DateTime, bindparam, inspect, text

from hippocrate.consultations.metadata import FAULT_KILL_AFTER, count_left, unsafe_seal_metadata
from hippocrate.db.migrate import alembic_config, upgrade
from hippocrate.patients.service import shred_patient
from tests.consultations.helpers import Actor, Api, pdf_bytes
from tests.consultations.test_metadata_dump import raw_rows
from tests.keyring.test_reseal import reseal_command


def shown(api: Api, patient: Actor) -> list[dict[str, Any]]:
    """Everything the patient's export says of their consultations."""
    export = api.client.get("/api/v1/patients/me/export", headers=api.relogin(patient).headers)
    assert export.status_code == 200, export.text
    consultations: list[dict[str, Any]] = export.json()["consultations"]
    return consultations


def play(api: Api) -> tuple[Actor, dict[str, str]]:
    patient = api.patient()
    gp = api.practitioner()
    ids = {}
    api.clock.advance(minutes=1, seconds=7)
    ids["closed"] = api.open(patient, files=[("bilan.pdf", pdf_bytes("bilan"), "application/pdf")])[
        "id"
    ]
    api.clock.advance(minutes=2, seconds=3)
    api.take(api.relogin(gp))
    api.clock.advance(minutes=2, seconds=11)
    assert api.write(api.relogin(gp), ids["closed"], "Depuis quand ?").status_code == 201
    api.clock.advance(minutes=3, seconds=5)
    assert api.close(api.relogin(gp), ids["closed"]).status_code == 200
    api.clock.advance(minutes=1, seconds=13)
    ids["cancelled"] = api.open(api.relogin(patient))["id"]
    api.clock.advance(minutes=1, seconds=17)
    cancel = f"/api/v1/consultations/{ids['cancelled']}/cancel"
    assert api.client.post(cancel, headers=patient.headers).status_code == 200
    api.clock.advance(minutes=1, seconds=19)
    ids["waiting"] = api.open(patient)["id"]
    return patient, ids


def as_before_0008(api: Api, before: list[dict[str, Any]]) -> None:
    """Put the rows back as older versions wrote them: plaintext specialty and exact
    instants, no timeline; messages' exact times and files' exact sizes in plaintext."""
    columns = ("created_at", "taken_at", "closed_at", "cancelled_at")
    with api.store.engine.begin() as connection:
        for consultation in before:
            if consultation["status"] == "requested":
                continue
            values = {
                c: datetime.fromisoformat(consultation[c]) if consultation[c] else None
                for c in columns
            }
            statement = text(
                "UPDATE consultations SET specialty = :specialty, timeline = NULL, "
                "created_at = :created_at, updated_at = :created_at, taken_at = :taken_at, "
                "closed_at = :closed_at, cancelled_at = :cancelled_at WHERE id = :id"
            ).bindparams(*(_instant(c) for c in columns))
            connection.execute(
                statement,
                {"specialty": consultation["specialty"], "id": _id(api, consultation), **values},
            )
            for message in consultation["messages"]:
                statement = text(
                    "UPDATE messages SET sent_at = NULL, created_at = :at WHERE id = :id"
                ).bindparams(_instant("at"))
                connection.execute(
                    statement,
                    {"at": datetime.fromisoformat(message["created_at"]), "id": _id(api, message)},
                )
                for attachment in message["attachments"]:
                    statement = text(
                        "UPDATE attachments SET exact_size = NULL, size = :size, "
                        "created_at = :at WHERE id = :id"
                    ).bindparams(_instant("at"))
                    connection.execute(
                        statement,
                        {
                            "size": attachment["size"],
                            "at": datetime.fromisoformat(attachment["created_at"]),
                            "id": _id(api, attachment),
                        },
                    )


def _instant(name: str) -> Any:
    return bindparam(name, type_=DateTime(timezone=True))


def _id(api: Api, row: dict[str, Any]) -> str:
    """An id as the raw column holds it (SQLite keeps UUIDs as 32 hex digits)."""
    return row["id"].replace("-", "") if api.store.backend == "sqlite" else row["id"]


def plaintext_left(api: Api, ids: dict[str, str]) -> dict[str, Any]:
    rows = raw_rows(api)
    by_id = {str(r["id"]).replace("-", ""): r for r in rows["consultations"]}
    closed = by_id[ids["closed"].replace("-", "")]
    return {
        "specialty": closed["specialty"],
        "taken_at": closed["taken_at"],
        "closed_at": closed["closed_at"],
        "sizes_sealed": [r["exact_size"] is not None for r in rows["attachments"]],
        "times_sealed": [r["sent_at"] is not None for r in rows["messages"]],
    }


def counts(api: Api) -> dict[str, int]:
    """How many messages and files the played consultations hold (closing may add a
    message with documents of its own)."""
    rows = raw_rows(api)
    return {"messages": len(rows["messages"]), "attachments": len(rows["attachments"])}


def test_reseal_seals_the_plaintext_metadata_of_older_rows(api: Api) -> None:
    patient, ids = play(api)
    before = shown(api, patient)
    as_before_0008(api, before)
    old = plaintext_left(api, ids)
    assert old["specialty"] == "general-practice"
    assert old["taken_at"] is not None
    made = counts(api)
    assert made["attachments"] >= 1
    assert old["sizes_sealed"] == [False] * made["attachments"]
    rows = 2 + made["messages"] + made["attachments"]
    # What the app shows is the same either way: it reads older rows' plaintext.
    assert shown(api, patient) == before
    assert count_left(sessions=api.store.sessions) == {"consultations": 2, **made}

    command, env = reseal_command(api.store)
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    assert run.returncode == 0, run.stderr
    assert f"rows holding plaintext health metadata: {rows}" in run.stdout
    assert f"sealed the plaintext metadata of {rows} rows" in run.stdout
    new = plaintext_left(api, ids)
    assert (new["specialty"], new["taken_at"], new["closed_at"]) == ("", None, None)
    assert new["sizes_sealed"] == [True] * made["attachments"]
    assert new["times_sealed"] == [True] * made["messages"]
    assert count_left(sessions=api.store.sessions) == {}
    assert shown(api, patient) == before
    # Nothing left: a second run seals nothing.
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert "sealed the plaintext metadata of 0 rows" in again.stdout, again.stdout


def test_rows_of_shredded_patients_are_coarsened_without_sealing(api: Api) -> None:
    patient, ids = play(api)
    as_before_0008(api, shown(api, patient))
    assert patient.patient_id is not None
    with api.store.sessions.begin() as session:
        shred_patient(session=session, patient_id=patient.patient_id)

    report = unsafe_seal_metadata(sessions=api.store.sessions, batch_size=1)

    assert report.sealed == {}
    made = counts(api)
    assert report.coarsened == {
        "consultations": 2,
        "shredded messages and attachments": made["messages"] + made["attachments"],
    }
    left = plaintext_left(api, ids)
    assert (left["specialty"], left["taken_at"], left["closed_at"]) == ("", None, None)
    rows = raw_rows(api)
    sizes = [r["size"] for r in rows["attachments"]]
    assert all(size >= 1024 and size & (size - 1) == 0 for size in sizes)
    for table in ("messages", "attachments"):
        for row in rows[table]:
            at = row["created_at"]
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            assert (at.day, at.hour, at.minute, at.second) == (1, 0, 0, 0), (table, at)
    again = unsafe_seal_metadata(sessions=api.store.sessions, batch_size=1)
    assert (again.sealed, again.coarsened) == ({}, {})


def test_a_killed_run_is_finished_by_the_next(api: Api) -> None:
    patient, ids = play(api)
    before = shown(api, patient)
    as_before_0008(api, before)
    command, env = reseal_command(api.store)
    command[-1] = "2"  # --batch-size 2: the consultations, then two messages, ...

    killed = subprocess.run(
        command, env={**env, FAULT_KILL_AFTER: "3"}, capture_output=True, text=True, check=False
    )

    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    # The first batch (both consultations) committed; the one killed did not.
    made = counts(api)
    assert count_left(sessions=api.store.sessions) == made
    assert shown(api, patient) == before  # every row reads the same meanwhile
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    rows = made["messages"] + made["attachments"]
    assert f"rows holding plaintext health metadata: {rows}" in resumed.stdout
    assert f"sealed the plaintext metadata of {rows} rows" in resumed.stdout
    assert count_left(sessions=api.store.sessions) == {}
    assert shown(api, patient) == before
    assert plaintext_left(api, ids)["specialty"] == ""


def test_an_older_waiting_consultation_is_sealed_when_taken(api: Api) -> None:
    """A consultation that waited since before 0008 has no timeline: taking it builds
    one from its plaintext, which then goes."""
    patient, ids = play(api)
    waiting = next(c for c in shown(api, patient) if c["id"] == ids["waiting"])
    with api.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE consultations SET timeline = NULL WHERE id = :id"),
            {"id": _id(api, waiting)},
        )
    api.clock.advance(minutes=4, seconds=29)

    taken = api.take(api.practitioner())

    assert taken["id"] == ids["waiting"]
    assert (taken["specialty"], taken["created_at"]) == (
        waiting["specialty"],
        waiting["created_at"],
    )
    assert datetime.fromisoformat(taken["taken_at"]) == api.clock.now
    row = next(
        r
        for r in raw_rows(api)["consultations"]
        if str(r["id"]).replace("-", "") == ids["waiting"].replace("-", "")
    )
    assert row["specialty"] == ""
    assert row["timeline"] is not None


def test_the_migration_numbers_older_rows_in_the_order_of_their_times(api: Api) -> None:
    """Revision 0008 on a database of 0007 with rows in it: consultations numbered per
    patient and messages per consultation in the order of their plaintext times, care
    relationships made whole days; the downgrade takes the columns away again."""
    patient, ids = play(api)
    as_before_0008(api, shown(api, patient))
    with api.store.engine.begin() as connection:
        connection.execute(text("UPDATE consultations SET number = 0"))
        connection.execute(text("UPDATE messages SET number = 0"))
    command.downgrade(alembic_config(api.store.engine), "0007")
    assert "timeline" not in {
        c["name"] for c in inspect(api.store.engine).get_columns("consultations")
    }

    upgrade(api.store.engine)

    rows = raw_rows(api)
    by_id = {str(r["id"]).replace("-", ""): r for r in rows["consultations"]}
    numbers = {name: by_id[cid.replace("-", "")]["number"] for name, cid in ids.items()}
    assert numbers == {"closed": 1, "cancelled": 2, "waiting": 3}
    per_consultation: dict[object, list[int]] = {}
    for message in rows["messages"]:
        per_consultation.setdefault(message["consultation_id"], []).append(message["number"])
    assert [sorted(n) for n in per_consultation.values()] == [
        list(range(1, len(n) + 1)) for n in per_consultation.values()
    ]
    for row in rows["care_relationships"]:
        for column in ("started_at", "ends_at"):
            at = row[column]
            at = datetime.fromisoformat(at) if isinstance(at, str) else at
            assert (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0), column
    # The app reads the same as before, from the plaintext the migration left.
    assert [c["id"] for c in shown(api, patient)] == [
        ids["closed"],
        ids["cancelled"],
        ids["waiting"],
    ]
