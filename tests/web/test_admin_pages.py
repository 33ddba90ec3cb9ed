"""The administrators' pages: a new practitioner is a four-eyes request that the one who
asked cannot approve and a second administrator can; the practitioners' list shows
metadata only; break-glass opens with its reason and lists the administrator's grants.
Other roles are refused, and a form without its CSRF token changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from stdnum import luhn

from hippocrate.access.models import BreakGlassGrant
from hippocrate.admin.models import FourEyesOutcome, FourEyesRequest
from hippocrate.identity.models import Account, AccountStatus, Practitioner, Role
from hippocrate.web import csrf
from tests.identity.conftest import Env
from tests.identity.helpers import fast_password_hashing
from tests.web.conftest import page_client, sign_in, submit, token_of

BASE_RPPS = "1098765432"
RPPS = BASE_RPPS + luhn.calc_check_digit(BASE_RPPS)
NEW = {
    "email": "dr.nouveau@example.org",
    "rpps": RPPS,
    "specialty": "dermatology",
    "given_names": "Louise",
    "family_name": "Nouveau",
}


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


def _requests(web: Env) -> list[FourEyesRequest]:
    with web.store.sessions() as session:
        return list(session.scalars(select(FourEyesRequest)).all())


def _practitioners(web: Env) -> int:
    with web.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Practitioner)) or 0)


def test_a_new_practitioner_needs_a_second_administrator(web: Env) -> None:
    first = web.user(Role.ADMIN)
    sign_in(web.client, first)
    asked = submit(web.client, "/admin/practitioners", NEW)
    assert asked.status_code == 303, asked.text[:500]
    done = web.client.get(asked.headers["location"])
    assert "another administrator must approve it" in done.text
    (request,) = _requests(web)
    assert request.outcome is FourEyesOutcome.PENDING
    with web.store.sessions() as session:
        account = session.get(Account, request.target_id)
        assert account is not None
        assert account.status is AccountStatus.DISABLED
    # The practitioners' list: metadata, never the address or the names typed.
    listed = web.client.get("/admin/practitioners")
    assert str(request.target_id) in listed.text
    assert NEW["email"] not in listed.text
    assert "Nouveau" not in listed.text

    waiting = web.client.get("/admin")
    assert waiting.status_code == 200
    assert "Create a staff account" in waiting.text
    assert "dermatology" in waiting.text
    assert ">you<" in waiting.text  # who asked
    own = submit(web.client, f"/admin/approvals/{request.id}/approve", {}, form="/admin")
    assert own.status_code == 403
    assert 'role="alert"' in own.text
    assert _requests(web)[0].outcome is FourEyesOutcome.PENDING

    second = page_client(web.app)
    sign_in(second, web.user(Role.ADMIN))
    page = second.get("/admin")
    assert f"/admin/approvals/{request.id}/approve" in page.text
    assert f"administrator {first.account_id}" in page.text
    approved = submit(second, f"/admin/approvals/{request.id}/approve", {}, form="/admin")
    assert approved.status_code == 303, approved.text[:500]
    assert _requests(web)[0].outcome is FourEyesOutcome.APPROVED
    with web.store.sessions() as session:
        account = session.get(Account, request.target_id)
        assert account is not None
        assert account.status is AccountStatus.ACTIVE
        specialty = session.scalar(
            select(Practitioner.specialty).where(Practitioner.account_id == account.id)
        )
        assert specialty == "dermatology"
    decided = second.get("/admin")
    assert "approved" in decided.text


def test_an_rpps_number_without_its_check_digit_is_refused(web: Env) -> None:
    sign_in(web.client, web.user(Role.ADMIN))
    wrong = RPPS[:-1] + str((int(RPPS[-1]) + 1) % 10)
    refused = submit(web.client, "/admin/practitioners", {**NEW, "rpps": wrong})
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert f'value="{wrong}"' in refused.text  # shown back to correct
    assert _requests(web) == []


def test_a_form_without_its_csrf_token_changes_nothing(web: Env) -> None:
    sign_in(web.client, web.user(Role.ADMIN))
    token_of(web.client, "/admin/practitioners")
    assert web.client.post("/admin/practitioners", data=NEW).status_code == 403
    assert _requests(web) == []
    assert _practitioners(web) == 0
    patient = web.user(Role.PATIENT)
    missing = web.client.post(
        "/admin/break-glass",
        data={"patient_id": str(patient.patient_id), "reason": "x" * 30, "minutes": "10"},
    )
    assert missing.status_code == 403
    with web.store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(BreakGlassGrant)) == 0


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PRACTITIONER, Role.DPO])
def test_no_other_role_reaches_the_admin_pages(web: Env, role: Role) -> None:
    sign_in(web.client, web.user(role))
    for path in ("/admin", "/admin/practitioners", "/admin/break-glass"):
        assert web.client.get(path).status_code == 403, path
    refused = submit(web.client, "/admin/practitioners", NEW, form="/sign-in")
    assert refused.status_code == 403
    assert _requests(web) == []


def test_break_glass_opens_with_its_reason(web: Env) -> None:
    admin = web.user(Role.ADMIN)
    sign_in(web.client, admin)
    patient = web.user(Role.PATIENT)
    reason = "Patient inconscient aux urgences, dossier demandé par le SAMU"
    short = submit(
        web.client,
        "/admin/break-glass",
        {"patient_id": str(patient.patient_id), "reason": "trop court", "minutes": "30"},
    )
    assert short.status_code == 422
    assert 'role="alert"' in short.text
    opened = submit(
        web.client,
        "/admin/break-glass",
        {"patient_id": str(patient.patient_id), "reason": reason, "minutes": "30"},
    )
    assert opened.status_code == 303, opened.text[:500]
    page = web.client.get(opened.headers["location"])
    assert page.status_code == 200
    assert reason in page.text
    assert str(patient.patient_id) in page.text
    with web.store.sessions() as session:
        grant = session.scalars(select(BreakGlassGrant)).one()
        assert grant.admin_account_id == admin.account_id
    # The patient sees it, with the reason, in their access history.
    headers = web.login(patient)
    history = web.client.get("/api/v1/patients/me/break-glass", headers=headers).json()
    assert history["items"][0]["reason"] == reason


def test_without_a_session_the_admin_pages_send_to_sign_in(web: Env) -> None:
    for path in ("/admin", "/admin/practitioners", "/admin/break-glass"):
        answer = web.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in")


def test_the_guard_counts_break_glass_like_any_read(web: Env) -> None:
    """Break-glass reads a patient's data: past the administrator's breadth the guard
    contains them, through the page as through the API."""
    admin = web.user(Role.ADMIN)
    sign_in(web.client, admin)
    limit = web.settings.guard_breadth_admin
    token = token_of(web.client, "/admin/break-glass")

    def open_on_a_new_patient() -> int:
        patient = web.user(Role.PATIENT)
        return web.client.post(
            "/admin/break-glass",
            data={
                csrf.FIELD: token,
                "patient_id": str(patient.patient_id),
                "reason": "Urgence vitale signalée par le centre 15 pour ce patient",
                "minutes": "10",
            },
        ).status_code

    assert [open_on_a_new_patient() for _ in range(limit)] == [303] * limit
    # Listing them reads the same patients again: nothing new to count.
    listed = web.client.get("/admin/break-glass")
    assert listed.status_code == 200
    assert listed.text.count("Urgence vitale") == limit
    assert open_on_a_new_patient() == 403
    with web.store.sessions() as session:
        account = session.get(Account, admin.account_id)
        assert account is not None
        assert account.status is AccountStatus.DISABLED
        assert account.disabled_reason == "contained"
        assert session.scalar(select(func.count()).select_from(BreakGlassGrant)) == limit


def test_an_expired_request_is_marked_and_cannot_be_approved(web: Env) -> None:
    sign_in(web.client, web.user(Role.ADMIN))
    assert submit(web.client, "/admin/practitioners", NEW).status_code == 303
    (request,) = _requests(web)
    with web.store.sessions() as session, session.begin():
        stored = session.get(FourEyesRequest, request.id)
        assert stored is not None
        stored.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    page = web.client.get("/admin")
    assert "Nothing waits for approval." in page.text
    assert 'class="badge late">expired<' in page.text
    second = page_client(web.app)
    sign_in(second, web.user(Role.ADMIN))
    late = submit(second, f"/admin/approvals/{request.id}/approve", {}, form="/admin")
    assert late.status_code == 409
    assert 'role="alert"' in late.text
    assert _practitioners(web) == 0  # the new account went with its request
