"""The DPO's pages: a stolen practitioner session contained by the guard shows on the
alerts, its incident is documented, assessed and scoped through the pages, the dossier
downloads as a PDF, the notices are requested by one DPO and approved by a second (the
first cannot), and their delivery shows; no page names a patient. Other roles are
refused, and a form without its CSRF token changes nothing."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select

from hippocrate.breach import jobs
from hippocrate.breach.models import Incident, IncidentScope
from hippocrate.identity.models import Role
from hippocrate.notify import delivery
from tests.breach.attacks import stolen_practitioner_session
from tests.conftest import Store
from tests.guard.helpers import exposed, guarded_api, staff_member
from tests.identity.conftest import Env
from tests.identity.helpers import TestUser, fast_password_hashing, totp_code
from tests.web.conftest import BASE, sign_in, submit, token_of

PARIS = ZoneInfo("Europe/Paris")

ASSESSED = {
    "category": "4",
    "category_why": "consultation content: health data",
    "identification": "maximum",
    "identification_why": "names and contact beside it",
    "confidentiality": "severe",
    "confidentiality_why": "read by an intruder",
    "integrity": "none",
    "integrity_why": "nothing altered",
    "availability": "none",
    "availability_why": "the service stayed up",
    "malicious": "yes",
    "malicious_why": "stolen session",
    "unintelligible": "no",
    "unintelligible_why": "the platform decrypted for them",
}


@pytest.fixture(autouse=True)
def _fast_passwords() -> Iterator[None]:
    with fast_password_hashing():
        yield


def pages_of(api: Any) -> TestClient:
    """A browser on the app ``api`` drives (its own cookies)."""
    return TestClient(api.client.app, base_url=BASE, follow_redirects=False)


def sign_in_at(client: TestClient, user: TestUser, now: datetime) -> None:
    """Sign in through the pages, the second factor at the app's clock."""
    first = submit(client, "/sign-in", {"email": user.email, "password": user.password})
    assert first.status_code == 303, first.text[:500]
    if first.headers["location"].startswith("/sign-in/code"):
        assert user.totp_secret is not None
        code = submit(client, "/sign-in/code", {"code": totp_code(user.totp_secret, now=now)})
        assert code.status_code == 303, code.text[:500]


def local(moment: datetime) -> str:
    """A ``datetime-local`` field's value with seconds (``step="1"``), Paris time."""
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M:%S")


def version_of(page: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', page)
    assert found is not None
    return found.group(1)


def test_the_dpo_answers_a_contained_intrusion_through_the_pages(
    store: Store, tmp_path: Path
) -> None:
    with guarded_api(store, tmp_path) as api:
        theft = stolen_practitioner_session(api, 25)
        victims = {str(v) for v in theft.victims}
        assert victims

        first = pages_of(api)
        sign_in_at(first, staff_member(api, Role.DPO), api.clock.now)

        # The alert: who was contained (role and id), by which rule, and its incident.
        alerts = first.get("/dpo")
        assert alerts.status_code == 200, alerts.text[:500]
        assert str(theft.practitioner.account_id) in alerts.text
        assert "breadth" in alerts.text
        with api.store.sessions() as session:
            (incident,) = session.scalars(select(Incident)).all()
            incident_id, reference = incident.id, incident.reference
        url = f"/dpo/incidents/{incident_id}"
        assert f'href="{url}"' in alerts.text
        assert exposed([alerts.text], theft.cases) == set()

        register = first.get("/dpo/incidents")
        assert register.status_code == 200
        assert reference in register.text
        assert re.search(r"\d+ h \d+ min", register.text)  # the clock's time left

        page = first.get(url)
        assert page.status_code == 200, page.text[:500]
        amended = submit(
            first,
            f"{url}/amend",
            {
                "version": version_of(page.text),
                "cause": "session d'un praticien volée",
                "consequences": "hameçonnage ciblé citant des motifs de consultation",
                "measures_taken": "compte suspendu, sessions closes",
                "dpo_name": "Claire Martin",
                "dpo_email": "dpo@example.org",
                "people_categories": "patients",
            },
            form=url,
        )
        assert amended.status_code == 303, amended.text[:500]
        page = first.get(url)
        assert "session d&#39;un praticien volée" in page.text
        assert "<dt>consequences</dt><dd>hameçonnage ciblé" in page.text

        # A change made on a stale version is refused whole, the form shown again.
        stale = submit(first, f"{url}/amend", {"version": "1", "cause": "autre"}, form=url)
        assert stale.status_code == 409
        assert 'role="alert"' in stale.text

        scoped = submit(
            first,
            f"{url}/scope",
            {"version": version_of(page.text), "since": local(theft.stolen_at)},
            form=url,
        )
        assert scoped.status_code == 303, scoped.text[:500]
        assessed = submit(
            first,
            f"{url}/assessment",
            {"version": version_of(first.get(url).text), **ASSESSED},
            form=url,
        )
        assert assessed.status_code == 303, assessed.text[:500]
        page = first.get(url)
        assert "very high" in page.text
        assert "consultation content: health data" in page.text  # a factor's justification
        assert "every person is told" in page.text  # the decision's reasons
        with api.store.sessions() as session:
            scope = session.scalars(select(IncidentScope)).one()
            scoped_ids = {p["id"] for p in scope.document["patients"]}
            counted = scope.document["counts"]["patients"]
        # From the theft's second on (a field holds no less): every victim is in it.
        assert victims <= scoped_ids
        assert f'<th scope="row">patients</th><td>{counted}</td>' in page.text
        assert "signed checkpoint" in page.text or "no signed checkpoint yet" in page.text
        # Counts, never the list: no victim's id, no victim's data.
        assert not any(v in page.text for v in scoped_ids)
        assert exposed([page.text], theft.cases) == set()
        ids = re.findall(r' id="([^"]+)"', page.text)
        assert len(ids) == len(set(ids))  # every label points at one field
        assert page.text.count("<h1>") == 1

        view = first.get(f"{url}/dossier")
        assert view.status_code == 200
        assert "Nature de la violation" in view.text
        printed = first.get(f"{url}/dossier.pdf")
        assert printed.status_code == 200
        assert printed.headers["content-type"] == "application/pdf"
        assert printed.headers["content-disposition"].startswith("attachment;")
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(printed.content)).pages)
        assert "Conséquences probables et gravité" in text
        assert exposed([view.text, text], theft.cases) == set()

        asked = submit(first, f"{url}/notices", {"version": version_of(page.text)}, form=url)
        assert asked.status_code == 303, asked.text[:500]
        page = first.get(url)
        assert "wait for another DPO" in page.text
        # Four eyes: the DPO who asked cannot approve, the page says so.
        own = submit(first, f"{url}/notices/approve", {"version": version_of(page.text)}, form=url)
        assert own.status_code == 403
        assert 'role="alert"' in own.text

        second = pages_of(api)
        sign_in_at(second, staff_member(api, Role.DPO), api.clock.now)
        approved = submit(
            second, f"{url}/notices/approve", {"version": version_of(page.text)}, form=url
        )
        assert approved.status_code == 303, approved.text[:500]

        delivery.drain()
        runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
        jobs.run_pending(jobs.open_queue(runtime))
        page = second.get(url)
        assert "The notices are approved" in page.text
        sent = re.search(r"<dt>Sent</dt><dd>(\d+)</dd>", page.text)
        assert sent is not None
        assert int(sent.group(1)) == counted
        assert exposed([page.text], theft.cases) == set()


@pytest.mark.parametrize("role", [Role.PATIENT, Role.PRACTITIONER, Role.ADMIN, Role.SUPPORT])
def test_no_other_role_reaches_the_dpo_pages(web: Env, role: Role) -> None:
    sign_in(web.client, web.user(role))
    for path in ("/dpo", "/dpo/incidents", "/dpo/drill"):
        assert web.client.get(path).status_code == 403, path


def test_without_a_session_the_dpo_pages_send_to_sign_in(web: Env) -> None:
    answer = web.client.get("/dpo/incidents")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in")


def _incidents(web: Env) -> int:
    with web.store.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Incident)) or 0)


def test_opening_an_incident_needs_the_csrf_token(web: Env) -> None:
    sign_in(web.client, web.user(Role.DPO))
    token_of(web.client, "/dpo/incidents")
    refused = web.client.post("/dpo/incidents", data={"title": "Sans jeton"})
    assert refused.status_code == 403
    assert _incidents(web) == 0
    opened = submit(web.client, "/dpo/incidents", {"title": "Ordinateur volé"})
    assert opened.status_code == 303
    assert _incidents(web) == 1
    page = web.client.get(opened.headers["location"])
    assert page.status_code == 200
    assert "Ordinateur volé" in page.text
    assert 'role="status"' in page.text  # the flash after the redirect
    # A time of awareness in the future is refused and the form shown again.
    future = submit(web.client, "/dpo/incidents", {"awareness_at": "2999-01-01T10:00"})
    assert future.status_code == 422
    assert 'role="alert"' in future.text
    assert _incidents(web) == 1
    # Notices before any scope: refused, the incident's page shown with the refusal.
    url = opened.headers["location"].split("?")[0]
    early = submit(web.client, f"{url}/notices", {"version": version_of(page.text)}, form=url)
    assert early.status_code == 422
    assert 'role="alert"' in early.text
    assert "Ordinateur volé" in early.text


def test_the_drill_page_says_how_to_run_it(web: Env) -> None:
    sign_in(web.client, web.user(Role.DPO))
    page = web.client.get("/dpo/drill")
    assert page.status_code == 200
    assert "hippocrate drill</code>" in page.text
    assert str(web.settings.data_dir) not in page.text  # no server path shown
    assert "No report yet." in page.text
    report = {
        "format": "hippocrate.drill.v1",
        "patients": 60,
        "database_copy": {"found": 0, "searched": 480},
        "attacks": [
            {
                "role": "practitioner",
                "patients_exposed": 21,
                "health_exposed": 21,
                "contained": True,
                "seconds_to_containment": 0.8,
                "reason": "breadth: 21 patients in 3600 s",
            }
        ],
        "response": {
            "reference": "INC-20261201-abcdef",
            "scope_patients": 21,
            "severity": {"band": "very high"},
            "notify_people": True,
            "notices_queued": 21,
            "seconds_detection_to_notices": 1.5,
        },
    }
    web.settings.data_dir.mkdir(parents=True, exist_ok=True)
    (web.settings.data_dir / "drill.json").write_text(json.dumps(report), encoding="utf-8")
    page = web.client.get("/dpo/drill")
    assert "INC-20261201-abcdef" in page.text
    assert "0 of 480" in page.text
    assert "very high" in page.text
