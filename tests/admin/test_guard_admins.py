"""Attack tests: a release is no fresh budget, administrators are counted and contained
like everyone, and a break-glass grant tells the patient at once. Each runs on both of
the guard's shared states (the database, Redis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hippocrate.identity.models import Account, AccountStatus, Role
from tests.admin.helpers import (
    REASON,
    STATES,
    admin,
    admin_api,
    events,
    mailbox,
    relogin,
    status_of,
    subjects,
)
from tests.conftest import Store
from tests.consultations.helpers import Api, assert_problem
from tests.guard.helpers import guard_of, patients_in_care, sign_in, staff_member

BREAK_GLASS = "Hippocrate : votre dossier a été ouvert en accès d'urgence"
LIMIT = 5  # the practitioners' hourly breadth limit in these tests


@pytest.fixture(params=STATES)
def api(request: pytest.FixtureRequest, sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with admin_api(
        sqlite_store,
        tmp_path,
        request.param,
        guard_breadth_practitioner=LIMIT,
        guard_daily_practitioner=1000,
        session_idle_staff=3600,  # the world is built over hours of simulated time
    ) as running:
        yield running


def read(api: Api, headers: dict[str, str], patient_id: Any) -> int:
    response = api.client.get(f"/api/v1/patients/{patient_id}", headers=headers)
    return int(response.status_code)


def release(api: Api, account_id: Any) -> None:
    """One admin asks, another approves (the only way through the API)."""
    _, asker = admin(api)
    _, approver = admin(api)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{account_id}/release",
        headers=asker.headers,
        json={"reason": REASON},
    )
    assert asked.status_code == 202, asked.text
    approved = api.client.post(
        f"/api/v1/admin/approvals/{asked.json()['id']}/approve", headers=approver.headers
    )
    assert approved.status_code == 200, approved.text


def test_a_released_practitioner_starts_from_its_counts_not_from_zero(api: Api) -> None:
    doctor = staff_member(api, Role.PRACTITIONER)
    # Eight patients in care, taken over hours (the builder is never contained), then an
    # hour of quiet: the window is empty.
    cases = patients_in_care(api, sign_in(api, doctor), 8, minutes_between=20)
    api.clock.advance(minutes=61)
    session = relogin(api, doctor)

    answers = [read(api, session.headers, case.patient_id) for case in cases[: LIMIT + 1]]

    assert answers == [200] * LIMIT + [403]  # the sixth patient contains the practitioner
    assert guard_of(api).state.contained(doctor.account_id) is not None
    release(api, doctor.account_id)
    assert status_of(api, doctor.account_id) == (AccountStatus.ACTIVE, None)
    session = relogin(api, doctor)
    # The five it read still count (the refused sixth does not): one of them again is
    # fine, the sixth is not.
    assert read(api, session.headers, cases[0].patient_id) == 200
    assert read(api, session.headers, cases[LIMIT].patient_id) == 403
    assert guard_of(api).state.contained(doctor.account_id) is not None
    assert status_of(api, doctor.account_id) == (AccountStatus.DISABLED, "contained")


def test_a_released_practitioner_has_only_the_rest_of_its_budget(api: Api) -> None:
    doctor = staff_member(api, Role.PRACTITIONER)
    cases = patients_in_care(api, sign_in(api, doctor), 8, minutes_between=20)
    api.clock.advance(minutes=61)
    session = relogin(api, doctor)
    assert [read(api, session.headers, case.patient_id) for case in cases[:3]] == [200] * 3
    # Contained on a false positive (an operator's mistake, say) after three patients.
    guard_of(api).state.contain(doctor.account_id, "test")
    with api.store.sessions.begin() as db:
        account = db.get(Account, doctor.account_id)
        assert account is not None
        account.status, account.disabled_reason = AccountStatus.DISABLED, "contained"

    release(api, doctor.account_id)
    session = relogin(api, doctor)

    rest = [read(api, session.headers, case.patient_id) for case in cases[3 : LIMIT + 1]]
    assert rest == [200] * (LIMIT - 3) + [403]  # two more patients, not five


def test_an_admins_break_glass_reads_past_the_limit_contain_the_admin(api: Api) -> None:
    user, signed = admin(api)
    limit = api.settings.guard_breadth_admin
    patients = [api.patient() for _ in range(limit + 1)]
    answers = []
    for patient in patients:
        granted = api.client.post(
            "/api/v1/admin/break-glass",
            headers=signed.headers,
            json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
        )
        if granted.status_code != 201:
            answers.append(granted.status_code)
            break
        answers.append(read(api, signed.headers, patient.patient_id))

    assert answers == [200] * limit + [403]
    assert guard_of(api).state.contained(user.account_id) is not None
    assert status_of(api, user.account_id) == (AccountStatus.DISABLED, "contained")
    assert_problem(api.client.get("/api/v1/me", headers=signed.headers), 401)
    [contained] = events(api, "guard:principal:contained")
    assert contained.actor_account_id == user.account_id


def test_the_patient_is_told_at_once_of_a_break_glass_grant(api: Api) -> None:
    _, signed = admin(api)
    patient = api.patient()

    granted = api.client.post(
        "/api/v1/admin/break-glass",
        headers=signed.headers,
        json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
    )

    assert granted.status_code == 201, granted.text
    assert subjects(api, patient.data.email) == [BREAK_GLASS]
    [message] = mailbox(api, patient.data.email)
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert REASON not in text  # the reason is in the app, not in an email
    assert "Qui a consulté mon dossier" in text
    # And the history already shows the grant, with its reason.
    grants = api.client.get("/api/v1/patients/me/break-glass", headers=patient.headers).json()
    assert [g["reason"] for g in grants["items"]] == [REASON]
    log = api.client.get("/api/v1/patients/me/access-log", headers=patient.headers).json()
    assert any(e["action"] == "patient:break-glass:write" for e in log["items"]), log


def test_one_stolen_admin_session_reads_at_most_its_own_budget(api: Api) -> None:
    """The attack of the issue, scripted: one administrator's session tries every way it
    had to multiply its reach (recover a practitioner and sign in as them, release, a new
    administrator, break-glass patient after patient). Measured: the distinct patients
    whose data reached the attacker."""
    doctor = staff_member(api, Role.PRACTITIONER)
    cases = patients_in_care(api, sign_in(api, doctor), 8, minutes_between=20)
    others = [api.patient() for _ in range(8)]
    api.clock.advance(minutes=61)
    thief_user, thief = admin(api)
    bodies: list[str] = []

    # Recover the practitioner: a request, and no token anywhere the thief can look.
    asked = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/recovery", headers=thief.headers, json={}
    )
    assert asked.status_code == 202
    own = api.client.post(
        f"/api/v1/admin/approvals/{asked.json()['id']}/approve", headers=thief.headers
    )
    assert own.status_code == 403
    # A new administrator: a request, nothing to sign in with.
    created = api.client.post(
        "/api/v1/admin/staff",
        headers=thief.headers,
        json={"email": "complice@example.org", "role": "admin"},
    )
    assert created.status_code == 202
    assert mailbox(api, "complice@example.org") == []
    # Break-glass, patient after patient, until refused.
    for patient in [c.patient for c in cases] + others:
        granted = api.client.post(
            "/api/v1/admin/break-glass",
            headers=thief.headers,
            json={"patient_id": str(patient.patient_id), "reason": REASON, "minutes": 10},
        )
        if granted.status_code != 201:
            break
        response = api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=thief.headers)
        bodies.append(response.text)
        if response.status_code != 200:
            break
    bodies += [asked.text, own.text, created.text, *map(str, mailbox(api, thief_user.email))]

    seen = "".join(bodies)
    read = {str(c.patient_id) for c in cases if c.patient.data.email in seen}
    read |= {str(p.patient_id) for p in others if p.data.email in seen}
    assert len(read) == api.settings.guard_breadth_admin  # 5: the session's own budget
    assert guard_of(api).state.contained(thief_user.account_id) is not None
    assert status_of(api, doctor.account_id) == (AccountStatus.ACTIVE, None)
