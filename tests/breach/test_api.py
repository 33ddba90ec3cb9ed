"""The incident register through the real API: only the DPO reaches it; a containment's
incident is documented, assessed, scoped and notified; the dossier (JSON, HTML, PDF) says
every Art. 33(3) item in French and nothing of any patient."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from hippocrate.identity.models import Role
from tests.breach.attacks import stolen_practitioner_session
from tests.breach.test_register import ASSESSMENT
from tests.conftest import Store
from tests.guard.helpers import (
    exposed,
    guarded_api,
    sign_in,
    staff_member,
)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.SUPPORT, Role.PRACTITIONER, Role.PATIENT])
def test_only_the_dpo_reaches_the_register(sqlite_store: Store, tmp_path: Path, role: Role) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        other = sign_in(api, staff_member(api, role))
        for method, path in (
            ("GET", "/api/v1/incidents"),
            ("POST", "/api/v1/incidents"),
        ):
            response = api.client.request(method, path, headers=other.headers, json={})
            assert response.status_code == 403, response.text
        assert api.client.get("/api/v1/incidents").status_code == 401


def test_a_containment_becomes_a_notified_incident(store: Store, tmp_path: Path) -> None:
    with guarded_api(store, tmp_path) as api:
        theft = stolen_practitioner_session(api, 25)
        cases, victims, stolen_at = theft.cases, theft.victims, theft.stolen_at

        dpo = sign_in(api, staff_member(api, Role.DPO))
        (listed,) = api.client.get("/api/v1/incidents", headers=dpo.headers).json()
        assert listed["origin"] == "guard"
        assert listed["clock"]["state"] == "running"
        url = f"/api/v1/incidents/{listed['id']}"
        version = listed["version"]

        stale = api.client.patch(
            url, headers=dpo.headers, json={"version": version + 5, "details": {}}
        )
        assert stale.status_code == 409, stale.text
        assert stale.json()["current_version"] == version
        amended = api.client.patch(
            url,
            headers=dpo.headers,
            json={
                "version": version,
                "details": {
                    "nature": {"cause": "session d'un praticien volée", "malicious": True},
                    "data": {"people_categories": ["patients"]},
                    "contacts": {"dpo": {"name": "Claire Martin", "email": "dpo@example.org"}},
                    "consequences": "hameçonnage ciblé citant des motifs de consultation",
                    "measures": {"taken": "compte suspendu, sessions closes"},
                },
            },
        )
        assert amended.status_code == 200, amended.text
        version = amended.json()["version"]

        # Without a start, the scope looks 30 days back: the practitioner's own care
        # of the day before is in it too (never smaller than the theft's).
        wide = api.client.post(f"{url}/scopes", headers=dpo.headers, json={"version": version})
        assert wide.status_code == 201, wide.text
        assert {p["id"] for p in wide.json()["patients"]} > {str(v) for v in victims}
        version += 1
        scoped = api.client.post(
            f"{url}/scopes",
            headers=dpo.headers,
            json={"version": version, "since": stolen_at.isoformat()},
        )
        assert scoped.status_code == 201, scoped.text
        scope = scoped.json()
        assert {p["id"] for p in scope["patients"]} == {str(v) for v in victims}
        assert scope["counts"]["patients"] == len(victims)
        version += 1

        assessed = api.client.put(
            f"{url}/assessment",
            headers=dpo.headers,
            json={"version": version, "assessment": ASSESSMENT},
        )
        assert assessed.status_code == 200, assessed.text
        decision = assessed.json()["decision"]
        assert decision["notify_authority"] is True
        assert decision["notify_people"] is True
        assert assessed.json()["band"] == "very high"
        assert assessed.json()["missing"] == []
        version = assessed.json()["version"]

        document = api.client.get(f"{url}/dossier", headers=dpo.headers).json()
        assert document["data"]["people_count"] == len(victims)
        assert document["general"]["phase"] == "initial"
        assert document["consequences"]["severity"]["band"] == "very high"
        page = api.client.get(f"{url}/dossier?format=html", headers=dpo.headers)
        assert page.headers["content-type"].startswith("text/html")
        assert "Nature de la violation" in page.text
        assert "Délégué à la protection des données" in page.text
        printed = api.client.get(f"{url}/dossier?format=pdf", headers=dpo.headers)
        assert printed.headers["content-type"] == "application/pdf"
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(printed.content)).pages)
        assert "Conséquences probables et gravité" in text
        # The dossier counts patients and names none.
        assert exposed([json.dumps(document), page.text, text], cases) == set()

        sent_at = api.clock.now
        notified = api.client.post(
            f"{url}/notifications",
            headers=dpo.headers,
            json={
                "version": version,
                "phase": "initial",
                "sent_at": sent_at.isoformat(),
                "receipt_reference": "CNIL-2026-000123",
            },
        )
        assert notified.status_code == 201, notified.text
        read = api.client.get(url, headers=dpo.headers).json()
        assert read["clock"]["state"] == "notified"
        assert [line["action"] for line in read["timeline"]][:1] == ["opened"]
        assert {"amended", "scoped", "assessed", "notified"} <= {
            line["action"] for line in read["timeline"]
        }
        kept = read["notifications"][0]
        assert kept["receipt_reference"] == "CNIL-2026-000123"
        with api.store.sessions() as session:
            from hippocrate.breach.models import IncidentNotification

            row = session.get(IncidentNotification, __import__("uuid").UUID(kept["id"]))
            assert row is not None
            canonical = json.dumps(
                row.content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            assert hashlib.sha256(canonical.encode()).hexdigest() == kept["digest"]


def test_a_late_initial_notification_needs_its_reason(sqlite_store: Store, tmp_path: Path) -> None:
    with guarded_api(sqlite_store, tmp_path) as api:
        dpo = sign_in(api, staff_member(api, Role.DPO))
        aware = api.clock.now - timedelta(hours=80)
        opened = api.client.post(
            "/api/v1/incidents",
            headers=dpo.headers,
            json={"awareness_at": aware.isoformat(), "details": {"general": {"title": "Copie"}}},
        )
        assert opened.status_code == 201, opened.text
        assert opened.json()["clock"]["state"] == "overdue"
        url = f"/api/v1/incidents/{opened.json()['id']}/notifications"
        body = {"version": 1, "phase": "initial", "sent_at": api.clock.now.isoformat()}
        refused = api.client.post(url, headers=dpo.headers, json=body)
        assert refused.status_code == 422, refused.text
        assert "reason" in refused.json()["detail"]
        complementary = api.client.post(
            url, headers=dpo.headers, json={**body, "phase": "complementary"}
        )
        assert complementary.status_code == 409, complementary.text
        accepted = api.client.post(
            url,
            headers=dpo.headers,
            json={**body, "delay_reason": "l'hébergeur nous a prévenus tardivement"},
        )
        assert accepted.status_code == 201, accepted.text
        bad = api.client.post(
            "/api/v1/incidents",
            headers=dpo.headers,
            json={"details": {"data": {"people_count": -3}}},
        )
        assert bad.status_code == 422


# -- odd values in the API's incident shapes --------------------------------------------


def test_a_nul_or_a_huge_count_is_refused_with_a_422(store: Store, tmp_path: Path) -> None:
    """PostgreSQL's text fields cannot hold a NUL (a server error there, kept on SQLite)
    and its integers cannot hold 10**30: the schemas refuse both first, on every route
    that takes a text or a count."""
    with guarded_api(store, tmp_path) as api:
        dpo = sign_in(api, staff_member(api, Role.DPO))
        for details in (
            {"general": {"title": "Vol\x00"}},
            {"data": {"people_count": 10**30}},
            {"data": {"records_count": 10**10}},
        ):
            opened = api.client.post(
                "/api/v1/incidents", headers=dpo.headers, json={"details": details}
            )
            assert opened.status_code == 422, (details, opened.status_code)
        opened = api.client.post(
            "/api/v1/incidents",
            headers=dpo.headers,
            json={"details": {"general": {"title": "Vol"}}},
        )
        assert opened.status_code == 201, opened.text
        incident = opened.json()
        url = f"/api/v1/incidents/{incident['id']}"
        version = incident["version"]
        for body in (
            {"version": version, "details": {"general": {"summary": "a\x00b"}}},
            {"version": version, "details": {"nature\x00": {}}},
            {"version": version, "details": {"data": {"people_count": 10**30}}},
            {"version": version, "details": {}, "note": "\x00"},
            {"version": 10**30, "details": {}},
        ):
            amended = api.client.patch(url, headers=dpo.headers, json=body)
            assert amended.status_code == 422, (body, amended.status_code)
        for body in ({"version": version, "note": "clos\x00"}, {"version": 10**30, "note": "x"}):
            closed = api.client.post(f"{url}/close", headers=dpo.headers, json=body)
            assert closed.status_code == 422, (body, closed.status_code)
        # Sane values still go through, and nothing above changed the incident.
        amended = api.client.patch(
            url,
            headers=dpo.headers,
            json={"version": version, "details": {"data": {"people_count": 10**9}}},
        )
        assert amended.status_code == 200, amended.text
        assert amended.json()["version"] == version + 1
