"""Art. 34 notices through the real API, the real queue and a real SMTP server: each
victim of a scripted attack gets one notice saying which of their data was involved,
with no health detail and no link; the notice job reads only the patients whose notice
it sends; only the DPO launches them, and only when required or with a reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hippocrate.audit.recorder import Actor
from hippocrate.breach import jobs, notices
from hippocrate.breach.models import Notice, NoticeStatus
from hippocrate.guard.errors import Contained
from hippocrate.identity import passwords
from hippocrate.identity.models import Account, Role
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient
from hippocrate.tags import Purpose
from hippocrate.work import unit_of_work
from tests.breach.attacks import stolen_practitioner_session
from tests.breach.test_register import ASSESSMENT
from tests.conftest import Store
from tests.guard.helpers import (
    exposed,
    guard_of,
    guarded_api,
    patients_in_care,
    sign_in,
    staff_member,
)
from tests.notify.conftest import Inbox, SmtpServer, _serve


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    yield from _serve(Inbox())


def incident_with_victims(api: Any, count: int = 22) -> tuple[Any, str, int, set[uuid.UUID], Any]:
    """A stolen practitioner session read until contained; the DPO documents, scopes
    (from the theft on) and assesses the guard's incident. Returns the DPO, the
    incident's URL, its version, the victims and the cases."""
    theft = stolen_practitioner_session(api, count)
    cases, victims, stolen_at = theft.cases, theft.victims, theft.stolen_at
    dpo = sign_in(api, staff_member(api, Role.DPO))
    (listed,) = api.client.get("/api/v1/incidents", headers=dpo.headers).json()
    url = f"/api/v1/incidents/{listed['id']}"
    version = listed["version"]
    amended = api.client.patch(
        url,
        headers=dpo.headers,
        json={
            "version": version,
            # What a thief holding the DPO's session would write here to be contacted.
            "details": {
                "contacts": {"dpo": {"name": "Claire Martin", "email": "dpo@thief.example"}}
            },
        },
    )
    version = amended.json()["version"]
    scoped = api.client.post(
        f"{url}/scopes",
        headers=dpo.headers,
        json={"version": version, "since": stolen_at.isoformat()},
    )
    assert scoped.status_code == 201, scoped.text
    version += 1
    return dpo, url, version, victims, cases


def test_each_victim_gets_one_notice_without_health_detail(
    store: Store, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with guarded_api(
        store,
        tmp_path,
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        dpo_email="dpo@hippocrate.example",
    ) as api:
        dpo, url, version, victims, cases = incident_with_victims(api)
        # Not required before the assessment, and no reason given: refused.
        early = api.client.post(f"{url}/notices", headers=dpo.headers, json={"version": version})
        assert early.status_code == 409, early.text
        assessed = api.client.put(
            f"{url}/assessment",
            headers=dpo.headers,
            json={"version": version, "assessment": ASSESSMENT},
        )
        version = assessed.json()["version"]
        asked = api.client.post(f"{url}/notices", headers=dpo.headers, json={"version": version})
        assert asked.status_code == 202, asked.text
        assert asked.json() == {"pending_approval": True, "patients": len(victims)}
        version += 1
        approve = {"version": version, "note": "vérifié avec la direction"}
        # Four eyes: the DPO who asked cannot approve; nothing is sent until another does.
        own = api.client.post(f"{url}/notices/approve", headers=dpo.headers, json=approve)
        assert own.status_code == 403, own.text
        runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
        assert jobs.run_pending(jobs.open_queue(runtime)) == 0
        assert smtp_server.inbox.received == [] or not any(
            "incident de sécurité" in str(m.message["Subject"]) for m in smtp_server.inbox.received
        )
        deputy = sign_in(api, staff_member(api, Role.DPO))
        approved = api.client.post(f"{url}/notices/approve", headers=deputy.headers, json=approve)
        assert approved.status_code == 202, approved.text
        again = api.client.post(
            f"{url}/notices/approve",
            headers=deputy.headers,
            json={**approve, "version": version + 1},
        )
        assert again.status_code == 409, again.text  # nothing left to approve

        from hippocrate.notify import delivery

        delivery.drain()  # the prepare task is queued once the launch committed
        queue = jobs.open_queue(runtime)
        jobs.run_pending(queue)
        progress = api.client.get(f"{url}/notices", headers=dpo.headers).json()
        assert progress["sent"] == len(victims) == progress["total"]

        received = smtp_server.inbox.received
        by_recipient: dict[str, list[Any]] = {}
        for mail in received:
            for rcpt in mail.recipients:
                by_recipient.setdefault(rcpt, []).append(mail)
        emails = {c.patient.data.email: c for c in cases if c.patient_id in victims}
        notices_sent = {
            rcpt: found
            for rcpt, mails in by_recipient.items()
            if (found := [m for m in mails if "incident de sécurité" in str(m.message["Subject"])])
        }
        assert set(notices_sent) == set(emails)
        for rcpt, mails in notices_sent.items():
            (mail,) = mails
            text = mail.message.get_body(preferencelist=("plain",)).get_content()
            html = mail.message.get_body(preferencelist=("html",)).get_content()
            assert "le contenu de vos consultations" in text.split("n'ont pas été")[0]
            assert "numéro de sécurité sociale" in text
            # The DPO's address is the deployment's, never the register's text.
            assert "dpo@hippocrate.example" in text
            assert "thief.example" not in mail.raw.decode("utf-8", "replace")
            assert "Claire Martin" not in text
            assert "<a " not in html
            assert "?token=" not in text
            # No health detail of this patient (nor anyone's) in their notice.
            assert exposed([mail.raw], cases) <= {emails[rcpt].patient_id}
            case = emails[rcpt]
            words = {s for s in case.sentinels if s not in (case.patient.data.email,)}
            assert not [w for w in words if w in mail.raw.decode("utf-8", "replace")]
            with api.store.sessions() as session:
                notice = session.scalars(
                    select(Notice).where(Notice.patient_id == case.patient_id)
                ).one()
                assert notice.status is NoticeStatus.SENT
                record = session.get(OutboundEmail, notice.email_id)
                assert record is not None
                assert record.sent_at is not None
            assert str(notice.email_id) in str(mail.message["Message-ID"])
            # Anyone holding it can check it came from Hippocrate.
            checked = api.client.post("/api/v1/messages/check", json={"text": text})
            assert checked.status_code == 200, checked.text
            assert checked.json()["sent_by_hippocrate"] is True
            assert checked.json()["kind"] == "security"

        # At their next sign-in the answer says a notice waits (the app's banner)...
        victim = next(c for c in cases if c.patient_id in victims).patient
        with api.store.sessions.begin() as session:
            account = session.get(Account, victim.account_id)
            assert account is not None
            account.password_hash = passwords.hash_password("un mot de passe assez long")
        signed = api.client.post(
            "/api/v1/auth/login",
            json={"email": victim.data.email, "password": "un mot de passe assez long"},
        )
        assert signed.status_code == 200, signed.text
        assert signed.json()["unseen_notices"] == 1
        # ... and the patient reads it in their space, in English on request.
        victim = api.relogin(victim)
        mine = api.client.get("/api/v1/patients/me/notices", headers=victim.headers)
        assert mine.status_code == 200, mine.text
        (shown,) = mine.json()
        assert "health" in shown["categories"]
        assert not shown["seen"]
        english = api.client.get(
            "/api/v1/patients/me/notices",
            headers={**victim.headers, "Accept-Language": "en"},
        ).json()[0]
        assert "the content of your consultations" in " ".join(english["text"]["involved"])
        french = api.client.get(
            "/api/v1/patients/me/notices", headers={**victim.headers, "Accept-Language": "fr"}
        ).json()[0]
        assert "Données vous concernant qui ont été exposées" in french["text"]
        seen = api.client.post(
            f"/api/v1/patients/me/notices/{shown['id']}/seen", headers=victim.headers
        )
        assert seen.status_code == 204
        other = api.relogin(next(c for c in cases if c.patient_id not in victims).patient)
        assert api.client.get("/api/v1/patients/me/notices", headers=other.headers).json() == []
        assert (
            api.client.post(
                f"/api/v1/patients/me/notices/{shown['id']}/seen", headers=other.headers
            ).status_code
            == 404
        )


def read_email(runtime: Any, actor: Actor, patient_id: uuid.UUID) -> str | None:
    with unit_of_work(runtime, actor) as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        return patient.email


def test_the_notice_job_reads_only_the_patients_it_writes_to(
    sqlite_store: Store, tmp_path: Path
) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        cases = patients_in_care(api, sign_in(api, staff_member(api, Role.PRACTITIONER)), 2)
        runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
        # The notice job reading a patient whose notice is not being sent: contained.
        with pytest.raises(Contained):
            read_email(runtime, notices.NOTICE_ACTOR, cases[0].patient_id)
        assert guard_of(api).state.contained(notices.NOTICE_JOB_ID) is not None

    with guarded_api(sqlite_store, tmp_path) as api:
        runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
        # Anyone else claiming the purpose: contained at the first read.
        impostor = Actor(role="operator", account_id=uuid.uuid4(), purpose=Purpose.NOTICE)
        with pytest.raises(Contained):
            read_email(runtime, impostor, cases[1].patient_id)
        assert guard_of(api).state.contained(impostor.account_id) is not None
