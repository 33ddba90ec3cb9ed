"""Attack tests: one stolen administrator session alone releases nobody, recovers nobody
and creates no administrator; a second administrator's approval executes the request,
once; a setup token never reaches an administrator."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hippocrate.access.principal import operator_id
from hippocrate.identity.models import AccountStatus, Role
from tests.admin.helpers import (
    REASON,
    admin,
    contain,
    events,
    mailbox,
    plain_api,
    raw_mail,
    relogin,
    status_of,
    subjects,
)
from tests.conftest import Store
from tests.consultations.helpers import Api, assert_problem
from tests.guard.helpers import guard_of, sign_in, staff_member
from tests.identity.conftest import link_token
from tests.identity.helpers import new_password

REQUESTED = "Hippocrate : une action attend une seconde validation"
DECIDED = "Hippocrate : une action d'administration a été décidée"


@pytest.fixture
def api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with plain_api(sqlite_store, tmp_path) as running:
        yield running


@pytest.fixture
def api_on(store: Store, tmp_path: Path) -> Iterator[Api]:
    with plain_api(store, tmp_path) as running:
        yield running


def approve(api: Api, headers: dict[str, str], request_id: str) -> Any:
    return api.client.post(f"/api/v1/admin/approvals/{request_id}/approve", headers=headers)


def refuse(api: Api, headers: dict[str, str], request_id: str) -> Any:
    return api.client.post(f"/api/v1/admin/approvals/{request_id}/refuse", headers=headers)


def complete(api: Api, token: str, password: str) -> Any:
    return api.client.post(
        "/api/v1/auth/password-reset/complete", json={"token": token, "password": password}
    )


# -- release -----------------------------------------------------------------------------


def test_one_admin_session_cannot_release_a_contained_practitioner(api_on: Api) -> None:
    api = api_on
    first_user, first = admin(api)
    second_user, second = admin(api)
    doctor = staff_member(api, Role.PRACTITIONER)
    contain(api, doctor.account_id)
    path = f"/api/v1/admin/accounts/{doctor.account_id}/release"

    asked = api.client.post(path, headers=first.headers, json={"reason": REASON})

    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["action"], request["outcome"]) == ("release", "pending")
    assert request["requested_by"] == str(first.account_id)
    # Nothing released yet, whatever the one admin does next.
    assert guard_of(api).state.contained(doctor.account_id) is not None
    assert status_of(api, doctor.account_id) == (AccountStatus.DISABLED, "contained")
    assert (
        "another administrator"
        in assert_problem(approve(api, first.headers, request["id"]), 403)["detail"]
    )
    again = api.client.post(path, headers=first.headers, json={"reason": REASON})
    assert "already waits" in assert_problem(again, 409)["detail"]
    assert guard_of(api).state.contained(doctor.account_id) is not None
    listed = api.client.get("/api/v1/admin/approvals", headers=second.headers).json()
    assert [item["id"] for item in listed["items"]] == [request["id"]]

    approved = approve(api, second.headers, request["id"])

    assert approved.status_code == 200, approved.text
    assert approved.json()["outcome"] == "approved"
    assert approved.json()["decided_by"] == str(second.account_id)
    assert guard_of(api).state.contained(doctor.account_id) is None
    assert status_of(api, doctor.account_id) == (AccountStatus.ACTIVE, None)
    assert_problem(approve(api, second.headers, request["id"]), 409)  # executes once
    assert api.client.get("/api/v1/admin/approvals", headers=second.headers).json()["total"] == 0
    # Recorded, both named; both admins told (when asked, and when decided).
    [asked_event] = events(api, "admin:approval:requested")
    [approved_event] = events(api, "admin:approval:approved")
    [released] = events(api, "guard:principal:released")
    assert asked_event.actor_account_id == first.account_id
    assert approved_event.actor_account_id == second.account_id
    assert f"requested-by:{first.account_id}" in approved_event.resources
    assert f"account:{doctor.account_id}" in approved_event.resources
    assert released.actor_account_id == second.account_id
    for user in (first_user, second_user):
        assert subjects(api, user.email) == [REQUESTED, DECIDED]


def test_an_admin_releases_a_contained_operator_with_a_second_admin(api: Api) -> None:
    _, first = admin(api)
    _, second = admin(api)
    operator = operator_id("alice")
    guard_of(api).state.contain(operator, "breadth: test")

    asked = api.client.post(
        f"/api/v1/admin/accounts/{operator}/release", headers=first.headers, json={"reason": REASON}
    )
    assert asked.status_code == 202, asked.text
    assert guard_of(api).state.contained(operator) is not None

    approved = approve(api, second.headers, asked.json()["id"])

    assert approved.status_code == 200, approved.text
    assert guard_of(api).state.contained(operator) is None
    assert len(events(api, "guard:principal:released")) == 1


def test_a_request_of_an_admin_contained_since_is_not_approved(api: Api) -> None:
    _, thief = admin(api)
    _, second = admin(api)
    doctor = staff_member(api, Role.PRACTITIONER)
    contain(api, doctor.account_id)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/release",
        headers=thief.headers,
        json={"reason": REASON},
    ).json()
    contain(api, thief.account_id)  # the stolen session is caught after asking

    refused = approve(api, second.headers, asked["id"])

    assert "contained or disabled" in assert_problem(refused, 409)["detail"]
    assert guard_of(api).state.contained(doctor.account_id) is not None
    assert refuse(api, second.headers, asked["id"]).status_code == 200


def test_a_request_expires_after_a_day_and_is_then_never_executed(api: Api) -> None:
    _, first = admin(api)
    second_user, _ = admin(api)
    doctor = staff_member(api, Role.PRACTITIONER)
    contain(api, doctor.account_id)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/release",
        headers=first.headers,
        json={"reason": REASON},
    ).json()

    api.clock.advance(hours=24, seconds=1)
    second = relogin(api, second_user)  # staff sessions idle out

    assert "expired" in assert_problem(approve(api, second.headers, asked["id"]), 409)["detail"]
    assert guard_of(api).state.contained(doctor.account_id) is not None
    assert api.client.get("/api/v1/admin/approvals", headers=second.headers).json()["total"] == 0
    assert len(events(api, "admin:approval:expired")) == 1
    assert_problem(refuse(api, second.headers, asked["id"]), 409)


def test_two_admins_approving_at_once_execute_the_request_once(
    store: Store, tmp_path: Path
) -> None:
    with plain_api(store, tmp_path) as api:
        _, first = admin(api)
        approvers = [admin(api)[1] for _ in range(2)]
        doctor = staff_member(api, Role.PRACTITIONER)
        answers: list[int] = []
        for _ in range(5):
            contain(api, doctor.account_id)
            asked = api.client.post(
                f"/api/v1/admin/accounts/{doctor.account_id}/release",
                headers=first.headers,
                json={"reason": REASON},
            )
            assert asked.status_code == 202, asked.text
            barrier = threading.Barrier(2)

            def decide(
                headers: dict[str, str],
                request_id: str = asked.json()["id"],
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                answers.append(approve(api, headers, request_id).status_code)

            threads = [threading.Thread(target=decide, args=(a.headers,)) for a in approvers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        assert sorted(answers) == [200] * 5 + [409] * 5
        assert len(events(api, "guard:principal:released")) == 5
        assert len(events(api, "admin:approval:approved")) == 5


# -- recovery ------------------------------------------------------------------------------


def test_one_admin_session_cannot_recover_a_practitioner_nor_see_a_setup_token(
    api_on: Api,
) -> None:
    api = api_on
    first_user, first = admin(api)
    second_user, second = admin(api)
    doctor = staff_member(api, Role.PRACTITIONER)
    doctor_session = sign_in(api, doctor)
    path = f"/api/v1/admin/accounts/{doctor.account_id}/recovery"

    asked = api.client.post(
        path, headers=first.headers, json={"password": True, "second_factor": True}
    )

    assert asked.status_code == 202, asked.text
    assert "token" not in {key for key in asked.json() if "token" in key}
    assert_problem(approve(api, first.headers, asked.json()["id"]), 403)
    # Nothing happened to the practitioner: still signed in, same password.
    assert api.client.get("/api/v1/me", headers=doctor_session.headers).status_code == 200

    approved = approve(api, second.headers, asked.json()["id"])

    assert approved.status_code == 200, approved.text
    assert approved.json()["sessions_ended"] == 1
    assert api.client.get("/api/v1/me", headers=doctor_session.headers).status_code == 401
    # The token went to the practitioner's own address, and only there.
    token = link_token(mailbox(api, doctor.email)[-1])
    answers = asked.text + approved.text
    answers += api.client.get("/api/v1/admin/approvals", headers=first.headers).text
    for user, signed in ((first_user, first), (second_user, second)):
        answers += api.client.get("/api/v1/notifications", headers=signed.headers).text
        assert token not in raw_mail(api, user.email)
    assert token not in answers
    password = new_password()
    assert complete(api, token, password).status_code == 204
    signed_in = api.client.post(
        "/api/v1/auth/login", json={"email": doctor.email, "password": password}
    ).json()
    assert signed_in["mfa_setup_required"] is True
    assert events(api, "account:setup-link:sent")[0].resources == [f"account:{doctor.account_id}"]


def test_a_recovery_is_refused_for_oneself_and_for_patients(api: Api) -> None:
    _, first = admin(api)
    patient = api.patient()
    for account_id in (first.account_id, patient.account_id):
        response = api.client.post(
            f"/api/v1/admin/accounts/{account_id}/recovery", headers=first.headers, json={}
        )
        assert_problem(response, 409)
    assert events(api, "admin:approval:requested") == []


def test_the_admin_acted_on_cannot_approve_their_own_recovery(api: Api) -> None:
    _, first = admin(api)
    _, second = admin(api)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{second.account_id}/recovery",
        headers=first.headers,
        json={"password": False, "second_factor": True},
    ).json()

    assert (
        "your own account"
        in assert_problem(approve(api, second.headers, asked["id"]), 403)["detail"]
    )


def test_a_second_factor_reset_tells_its_owner(api: Api) -> None:
    _, first = admin(api)
    _, second = admin(api)
    staff = staff_member(api, Role.SUPPORT)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{staff.account_id}/recovery",
        headers=first.headers,
        json={"password": False, "second_factor": True},
    ).json()
    before = subjects(api, staff.email)

    assert approve(api, second.headers, asked["id"]).status_code == 200

    told = subjects(api, staff.email)[len(before) :]
    assert told == ["Hippocrate : la sécurité de votre compte a changé"]


# -- creating an administrator -------------------------------------------------------------


def test_one_admin_session_cannot_create_an_admin(api_on: Api) -> None:
    api = api_on
    first_user, first = admin(api)
    _, second = admin(api)
    email = f"new.admin.{uuid.uuid4().hex[:8]}@example.org"

    asked = api.client.post(
        "/api/v1/admin/staff", headers=first.headers, json={"email": email, "role": "admin"}
    )

    assert asked.status_code == 202, asked.text
    request = asked.json()
    new_admin = uuid.UUID(request["target_id"])
    assert (request["action"], request["role"]) == ("create_staff", "admin")
    assert "setup_token" not in request
    assert status_of(api, new_admin) == (AccountStatus.DISABLED, "awaiting approval")
    # The one admin can neither enable, recover nor approve it; nothing was emailed to it.
    enable = api.client.post(f"/api/v1/admin/accounts/{new_admin}/enable", headers=first.headers)
    assert "awaits" in assert_problem(enable, 409)["detail"]
    recover = api.client.post(
        f"/api/v1/admin/accounts/{new_admin}/recovery", headers=first.headers, json={}
    )
    assert_problem(recover, 409)
    assert_problem(approve(api, first.headers, request["id"]), 403)
    assert mailbox(api, email) == []

    approved = approve(api, second.headers, request["id"])

    assert approved.status_code == 200, approved.text
    assert status_of(api, new_admin) == (AccountStatus.ACTIVE, None)
    token = link_token(mailbox(api, email)[-1])
    assert token not in approved.text + raw_mail(api, first_user.email)
    password = new_password()
    assert complete(api, token, password).status_code == 204
    answer = api.client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert answer.json()["mfa_setup_required"] is True
    assert len(events(api, "account:admin:created")) == 1


def test_a_refused_admin_is_deleted_and_its_address_freed(api: Api) -> None:
    _, first = admin(api)
    _, second = admin(api)
    email = "refused.admin@example.org"
    asked = api.client.post(
        "/api/v1/admin/staff", headers=first.headers, json={"email": email, "role": "admin"}
    ).json()

    refused = refuse(api, second.headers, asked["id"])

    assert refused.status_code == 200, refused.text
    assert refused.json()["outcome"] == "refused"
    assert status_of(api, uuid.UUID(asked["target_id"]))[0] is AccountStatus.DELETED
    assert_problem(approve(api, second.headers, asked["id"]), 409)
    again = api.client.post(
        "/api/v1/admin/staff", headers=first.headers, json={"email": email, "role": "admin"}
    )
    assert again.status_code == 202, again.text


def test_approvals_are_for_admins_only(api: Api) -> None:
    _, first = admin(api)
    doctor = staff_member(api, Role.PRACTITIONER)
    contain(api, doctor.account_id)
    asked = api.client.post(
        f"/api/v1/admin/accounts/{doctor.account_id}/release",
        headers=first.headers,
        json={"reason": REASON},
    ).json()
    for role in (Role.SUPPORT, Role.DPO, Role.PRACTITIONER):
        other = sign_in(api, staff_member(api, role))
        assert_problem(approve(api, other.headers, asked["id"]), 403)
        assert_problem(api.client.get("/api/v1/admin/approvals", headers=other.headers), 403)
    assert_problem(approve(api, first.headers, str(uuid.uuid4())), 404)
    assert guard_of(api).state.contained(doctor.account_id) is not None
