"""Who accessed my record, as the patient reads it (GET /api/v1/patients/me/access-log):
their own actions as "you", repeated reads grouped into one entry with a count and a
first and last time, a break-glass naming its reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hippocrate.audit.models import AuditEvent
from hippocrate.audit.schemas import AccessEntry
from hippocrate.audit.views import GROUP_WITHIN, group
from hippocrate.identity.models import Role
from tests.conftest import Store
from tests.consultations.helpers import Actor, Api, running_api

REASON = "Appel du SAMU : patient inconscient, antécédents nécessaires"
OTHER_REASON = "Contrôle qualité demandé par la direction médicale"


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(store, tmp_path) as running:
        yield running


def history(api: Api, patient: Actor, **params: Any) -> dict[str, Any]:
    response = api.client.get(
        "/api/v1/patients/me/access-log", headers=patient.headers, params=params
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def reads(entries: list[dict[str, Any]], action: str = "patient:record:read") -> list[Any]:
    return [e for e in entries if e["action"] == action]


def test_a_patient_reading_their_record_five_times_sees_one_entry_you(api: Api) -> None:
    patient = api.patient()
    for _ in range(5):
        assert api.client.get("/api/v1/patients/me", headers=patient.headers).status_code == 200

    entries = history(api, patient)["items"]

    mine = reads(entries)
    assert len(mine) == 1, mine
    entry = mine[0]
    assert (entry["who"], entry["role"], entry["purpose"]) == ("you", "patient", "self")
    assert entry["count"] == 5
    assert entry["at"] <= entry["until"]
    assert "identity" in entry["categories"]


def test_a_practitioners_reads_are_grouped_under_their_name(api: Api) -> None:
    patient = api.patient()
    api.open(patient)
    doctor = api.practitioner(names=("Hélène", "Marchetti"))
    api.take(doctor)
    for _ in range(3):
        response = api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=doctor.headers)
        assert response.status_code == 200

    entries = history(api, patient)["items"]

    theirs = reads(entries)
    assert len(theirs) == 1, theirs
    assert theirs[0]["who"].startswith("Dr Hélène Marchetti")
    # Four: the take shows the practitioner the patient's names and age (one read of
    # the record), then the three reads of the record.
    assert (theirs[0]["role"], theirs[0]["purpose"], theirs[0]["count"]) == (
        "practitioner",
        "care",
        4,
    )
    # The patient's own opening of the consultation is theirs, not someone else's; the
    # take writes the record too (its timeline is sealed then), under the practitioner.
    opened = reads(entries, "consultation:record:write")
    writers = {e["who"] for e in opened}
    assert "you" in writers
    assert writers <= {"you", theirs[0]["who"]}


def test_an_admins_break_glass_names_its_reason_and_each_grant_its_own(api: Api) -> None:
    patient = api.patient()
    admin = api.staff(Role.ADMIN)
    for reason in (REASON, OTHER_REASON):
        # The trail dates events by the real clock: so does the app here, so that the
        # second grant starts after the reads under the first.
        api.clock.now = datetime.now(UTC)
        api.relogin(admin)
        granted = api.client.post(
            "/api/v1/admin/break-glass",
            headers=admin.headers,
            json={"patient_id": str(patient.patient_id), "reason": reason, "minutes": 10},
        )
        assert granted.status_code == 201, granted.text
        for _ in range(2):
            response = api.client.get(
                f"/api/v1/patients/{patient.patient_id}", headers=admin.headers
            )
            assert response.status_code == 200

    api.relogin(patient)
    page = history(api, patient)
    theirs = reads(page["items"])

    assert [e["who"] for e in theirs] == [
        f"administrator with break-glass: {OTHER_REASON}",
        f"administrator with break-glass: {REASON}",
    ]
    assert [e["count"] for e in theirs] == [2, 2]
    assert {e["purpose"] for e in theirs} == {"break-glass"}
    # Pages are cut from the grouped entries. Reading the history reads the grants'
    # reasons, which is in it too: the first reading adds one entry, the next ones
    # count in it.
    assert page["total"] == len(page["items"])
    first = history(api, patient, limit=1, offset=0)
    again = history(api, patient)
    assert first["total"] == again["total"] == page["total"] + 1
    assert len(first["items"]) == 1
    assert (first["items"][0]["who"], first["items"][0]["action"]) == (
        "you",
        "patient:break-glass:read",
    )
    assert again["items"][0]["count"] == first["items"][0]["count"] + 1


# -- the grouping rule ------------------------------------------------------------------


def _event(at: datetime, *, account: uuid.UUID, action: str = "patient:record:read") -> Any:
    return AuditEvent(
        at=at,
        actor_account_id=account,
        actor_role="practitioner",
        action=action,
        categories=["identity"],
        purpose="care",
        outcome="allowed",
    )


def _entry(event: Any) -> AccessEntry:
    return AccessEntry(
        at=event.at,
        who=f"Dr {event.actor_account_id}",
        role=event.actor_role,
        action=event.action,
        categories=list(event.categories),
        purpose=event.purpose,
        outcome=event.outcome,
        until=event.at,
    )


def test_only_consecutive_accesses_close_in_time_are_grouped() -> None:
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    one, two = uuid.uuid4(), uuid.uuid4()
    step = GROUP_WITHIN / 2
    newest_first = [
        _event(t0 + 5 * GROUP_WITHIN, account=one),  # long after: an entry of its own
        _event(t0 + 2 * step, account=one),
        _event(t0 + step, account=one),
        _event(t0 + step, account=two),  # someone else in between: breaks the run
        _event(t0, account=one),
        _event(t0, account=one, action="consultation:record:read"),
    ]

    grouped = group(newest_first, [_entry(e) for e in newest_first])

    assert [(e.who, e.action, e.count) for e in grouped] == [
        (f"Dr {one}", "patient:record:read", 1),
        (f"Dr {one}", "patient:record:read", 2),
        (f"Dr {two}", "patient:record:read", 1),
        (f"Dr {one}", "patient:record:read", 1),
        (f"Dr {one}", "consultation:record:read", 1),
    ]
    assert (grouped[1].at, grouped[1].until) == (t0 + step, t0 + 2 * step)
    assert grouped[0].at == grouped[0].until == t0 + 5 * GROUP_WITHIN
    assert sum(e.count for e in grouped) == len(newest_first)
