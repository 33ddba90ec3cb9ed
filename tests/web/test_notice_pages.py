"""The patient's security notices: the banner says one waits, the page shows it in full,
marking it read (with the CSRF token) makes the banner go; another patient sees none of
it and cannot mark it; staff are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hippocrate.breach.models import IncidentScope, Notice, NoticeStatus
from hippocrate.identity.models import Role
from tests.breach.test_register import _open
from tests.identity.conftest import Env
from tests.identity.helpers import fast_password_hashing
from tests.web.conftest import page_client, sign_in, submit, token_of

BANNER = "A security notice is addressed to you."


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


def notice_for(web: Env, patient_id: uuid.UUID) -> uuid.UUID:
    """A notice sent to ``patient_id`` of an incident whose scope involved their
    consultations and identity (set up as the notice job leaves it)."""
    incident_id = _open(web.store, general={"title": "Sessions volées"})
    now = datetime.now(UTC)
    with web.store.sessions() as session, session.begin():
        scope = IncidentScope(
            incident_id=incident_id,
            kind="principals",
            computed_at=now,
            computed_by_role="dpo",
            computed_by=None,
            head_seq=0,
            document={
                "counts": {"patients": 1},
                "patients": [
                    {"id": str(patient_id), "categories": ["health", "identity"], "records": 1}
                ],
            },
        )
        session.add(scope)
        session.flush()
        notice = Notice(
            incident_id=incident_id,
            patient_id=patient_id,
            scope_id=scope.id,
            status=NoticeStatus.SENT,
            next_attempt_at=now,
            sent_at=now,
        )
        session.add(notice)
        session.flush()
        return notice.id


def _seen(web: Env, notice_id: uuid.UUID) -> bool:
    with web.store.sessions() as session:
        notice = session.scalars(select(Notice).where(Notice.id == notice_id)).one()
        return notice.seen_at is not None


def test_the_patient_reads_the_notice_and_the_banner_goes(web: Env) -> None:
    patient = web.user()
    assert patient.patient_id is not None
    notice_id = notice_for(web, patient.patient_id)
    sign_in(web.client, patient)
    home = web.client.get("/patient/notices", headers={"Accept-Language": "fr"})
    assert home.status_code == 200
    assert 'class="banner"' in home.text
    assert 'href="/patient/notices"' in home.text
    # In full: what was involved, what to do; in English on request.
    assert "Données vous concernant qui ont été exposées" in home.text
    english = web.client.get("/patient/notices", headers={"Accept-Language": "en"})
    assert BANNER in english.text
    assert "the content of your consultations" in english.text

    token_of(web.client, "/patient/notices")
    refused = web.client.post(f"/patient/notices/{notice_id}/seen")
    assert refused.status_code == 403
    assert not _seen(web, notice_id)

    marked = submit(web.client, f"/patient/notices/{notice_id}/seen", {}, form="/patient/notices")
    assert marked.status_code == 303
    assert _seen(web, notice_id)
    after = web.client.get(marked.headers["location"], headers={"Accept-Language": "en"})
    assert 'class="banner"' not in after.text
    assert "I have read this notice" not in after.text


def test_another_patient_neither_sees_nor_marks_the_notice(web: Env) -> None:
    victim = web.user()
    assert victim.patient_id is not None
    notice_id = notice_for(web, victim.patient_id)
    other = page_client(web.app)
    sign_in(other, web.user())
    page = other.get("/patient/notices")
    assert page.status_code == 200
    assert 'class="banner"' not in page.text
    assert str(notice_id) not in page.text
    attempt = submit(other, f"/patient/notices/{notice_id}/seen", {}, form="/patient/notices")
    assert attempt.status_code == 404
    assert not _seen(web, notice_id)


@pytest.mark.parametrize("role", [Role.PRACTITIONER, Role.DPO, Role.ADMIN])
def test_staff_have_no_notices_page(web: Env, role: Role) -> None:
    sign_in(web.client, web.user(role))
    assert web.client.get("/patient/notices").status_code == 403


def test_without_a_session_the_notices_send_to_sign_in(web: Env) -> None:
    answer = web.client.get("/patient/notices")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in")
