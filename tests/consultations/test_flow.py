"""The whole teleconsultation, through the HTTP API, on SQLite and PostgreSQL: a
patient opens with files, a practitioner takes it from the queue, they write to each
other with files, the practitioner closes with a report, the patient reads and exports
everything; the practitioner keeps access for the care period, then loses it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

from sqlalchemy import func, select

from hippocrate.consultations.models import day_ceil
from hippocrate.identity.models import Role
from hippocrate.notify.models import OutboundEmail
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    Api,
    jpeg_bytes,
    pdf_bytes,
    png_bytes,
    stored_as,
)
from tests.identity.helpers import fast_password_hashing, login_as, make_user

SUBJECT = "Douleur thoracique à l'effort"
DESCRIPTION = "Une gêne derrière le sternum quand je monte les escaliers."


def test_full_consultation(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner("general-practice", names=("Claire", "Dubreuil"), rpps="10003456789")
    analysis = pdf_bytes("Bilan lipidique du 3 novembre")
    photo = png_bytes("photo de la cicatrice")

    # The patient opens, with two files.
    opened = api.open(
        patient,
        subject=SUBJECT,
        description=DESCRIPTION,
        files=[("bilan.pdf", analysis, "application/pdf"), ("cicatrice.png", photo, "image/png")],
    )
    assert opened["status"] == "requested"
    assert opened["subject"] == SUBJECT
    assert opened["practitioner"] is None
    consultation_id = opened["id"]

    # The practitioner sees only a specialty and a waiting time in the queue.
    api.clock.advance(minutes=12)
    queue = api.client.get("/api/v1/queue", headers=gp.headers)
    assert queue.status_code == 200, queue.text
    page = queue.json()
    assert page["total"] == 1
    assert page["items"] == [
        {
            "entry": page["items"][0]["entry"],
            "specialty": "general-practice",
            "position": 1,
            "waiting_since": page["items"][0]["waiting_since"],
            "waiting_seconds": 12 * 60,
        }
    ]
    for secret in (SUBJECT, DESCRIPTION, consultation_id, str(patient.patient_id)):
        assert secret not in queue.text

    # Takes it: from now on, a care relationship, and the whole record.
    taken = api.take(gp)
    assert taken["id"] == consultation_id
    assert taken["status"] == "in_progress"
    assert taken["subject"] == SUBJECT
    assert taken["questionnaire"]["symptoms_duration"] == "4_to_7_days"
    assert taken["practitioner"]["rpps"] == "10003456789"
    assert api.client.get("/api/v1/queue", headers=gp.headers).json()["total"] == 0
    record = api.client.get(f"/api/v1/patients/{patient.patient_id}", headers=gp.headers)
    assert record.status_code == 200, record.text
    assert record.json()["family_name"] == patient.data.family_name

    # Messages both ways, with files.
    api.clock.advance(minutes=2)
    scan = jpeg_bytes()
    sent = api.write(gp, consultation_id, "Pouvez-vous m'envoyer votre ECG ?")
    assert sent.status_code == 201, sent.text
    assert sent.json()["author"] == "practitioner"
    api.clock.advance(minutes=5)
    reply = api.write(
        patient, consultation_id, "Voici l'ECG.", files=[("ecg.jpg", scan, "image/jpeg")]
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["author"] == "patient"
    assert [a["filename"] for a in reply.json()["attachments"]] == ["ecg.jpg"]
    prescription_pdf = pdf_bytes("Ordonnance: trinitrine")
    api.clock.advance(minutes=5)
    answer = api.write(
        gp, consultation_id, "Ordonnance jointe.", files=[("ordonnance.pdf", prescription_pdf, "")]
    )
    assert answer.status_code == 201, answer.text

    # Closing: report, prescription, acts; the record names the practitioner.
    api.clock.advance(minutes=3)
    closed = api.close(
        gp,
        consultation_id,
        report="Angor d'effort probable; épreuve d'effort à programmer.",
        prescription="Trinitrine 0,3 mg si douleur.",
        acts=["TCG"],
    )
    assert closed.status_code == 200, closed.text
    closed_record = closed.json()
    assert closed_record["status"] == "closed"
    assert closed_record["practitioner"] == {
        "id": str(gp.practitioner_id),
        "given_names": "Claire",
        "family_name": "Dubreuil",
        "rpps": "10003456789",
        "specialty": "general-practice",
    }
    assert closed_record["acts"] == ["TCG"]
    closed_at = datetime.fromisoformat(closed_record["closed_at"])
    assert closed_at == api.clock.now
    assert datetime.fromisoformat(closed_record["taken_at"]) < closed_at
    # Each side was told, once per event, that something waits, and nothing more: the
    # patient of the take, the two messages and the report; the practitioner of the
    # patient's reply.
    with api.store.sessions() as session:
        emails = session.execute(
            select(OutboundEmail.template, OutboundEmail.account_id).order_by(
                OutboundEmail.created_at
            )
        ).all()
    assert [(template, to == patient.account_id) for template, to in emails] == [
        ("consultation_taken", True),
        ("new_message", True),
        ("patient_replied", False),
        ("new_message", True),
        ("report_ready", True),
    ]
    assert {to for template, to in emails if template == "patient_replied"} == {gp.account_id}

    # The patient reads everything.
    mine = api.client.get(f"/api/v1/consultations/{consultation_id}", headers=patient.headers)
    assert mine.json()["report"] == "Angor d'effort probable; épreuve d'effort à programmer."
    assert mine.json()["prescription"] == "Trinitrine 0,3 mg si douleur."
    listed = api.client.get("/api/v1/consultations", headers=patient.headers).json()
    assert [c["id"] for c in listed["items"]] == [consultation_id]
    messages = api.client.get(
        f"/api/v1/consultations/{consultation_id}/messages", headers=patient.headers
    ).json()
    assert messages["total"] == 5
    assert [m["author"] for m in messages["items"]] == [
        "patient",
        "practitioner",
        "patient",
        "practitioner",
        "practitioner",  # closing: the signed report and prescription
    ]
    # Images come back re-encoded without their metadata, PDFs as sent.
    uploads = {
        "bilan.pdf": analysis,
        "cicatrice.png": stored_as("cicatrice.png", photo),
        "ecg.jpg": stored_as("ecg.jpg", scan),
    }
    uploads["ordonnance.pdf"] = prescription_pdf
    downloaded = {}
    for message in messages["items"]:
        for attachment in message["attachments"]:
            response = api.client.get(
                f"/api/v1/attachments/{attachment['id']}", headers=patient.headers
            )
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == attachment["media_type"]
            assert response.headers["content-disposition"].startswith("attachment;")
            assert f'filename="{attachment["filename"]}"' in response.headers["content-disposition"]
            downloaded[attachment["filename"]] = response.content
    # Closing issued the signed report and prescription; anyone holding one can check it.
    issued_documents = {}
    for issued in ("compte-rendu-hippocrate.pdf", "ordonnance-hippocrate.pdf"):
        document = issued_documents[issued] = downloaded.pop(issued)
        check = api.client.post(
            "/api/v1/documents/verify/file",
            content=document,
            headers={"Content-Type": "application/pdf"},
        )
        assert check.status_code == 200, check.text
        assert check.json()["issued"] is True
    assert downloaded == uploads

    # ...and exports it.
    export = api.client.get("/api/v1/patients/me/export", headers=patient.headers)
    assert export.status_code == 200, export.text
    document = json.loads(export.content)
    assert document["format"] == "hippocrate.export.v1"
    assert document["patient"]["nir"] == patient.data.nir
    (exported,) = document["consultations"]
    assert exported["subject"] == SUBJECT
    assert exported["report"].startswith("Angor")
    exported_files = {
        a["filename"]: base64.b64decode(a["content_base64"])
        for m in exported["messages"]
        for a in m["attachments"]
    }
    assert exported_files == uploads | issued_documents

    # The practitioner keeps access during the care period...
    api.clock.advance(days=29)
    api.relogin(gp)
    still = api.client.get(f"/api/v1/consultations/{consultation_id}", headers=gp.headers)
    assert still.status_code == 200, still.text
    attachment_id = messages["items"][0]["attachments"][0]["id"]
    assert (
        api.client.get(f"/api/v1/attachments/{attachment_id}", headers=gp.headers).status_code
        == 200
    )

    # ...and loses it after, at the midnight (UTC) that ends the period's last day (care
    # is counted in whole days, so the row does not date the closing): the consultation,
    # its messages, files and the patient's record.
    api.clock.now = day_ceil(api.clock.now + timedelta(days=1)) + timedelta(seconds=1)
    api.relogin(gp)
    for path in (
        f"/api/v1/consultations/{consultation_id}",
        f"/api/v1/consultations/{consultation_id}/messages",
        f"/api/v1/attachments/{attachment_id}",
        f"/api/v1/patients/{patient.patient_id}",
    ):
        assert api.client.get(path, headers=gp.headers).status_code == 404, path
    assert api.client.get("/api/v1/consultations", headers=gp.headers).json()["total"] == 0
    # The patient keeps everything.
    api.relogin(patient)
    assert (
        api.client.get(
            f"/api/v1/consultations/{consultation_id}", headers=patient.headers
        ).status_code
        == 200
    )
    with api.store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(OutboundEmail)) == 5


def test_the_same_flow_signed_in_the_real_way(api: Api) -> None:
    """Accounts made by the identity service, signed in through /auth/login and, for the
    practitioner, /auth/mfa with a TOTP code: the consultation routes take those tokens."""
    with fast_password_hashing():
        patient = make_user(api.store.sessions, Role.PATIENT, now=api.clock.now)
        gp = make_user(api.store.sessions, Role.PRACTITIONER, now=api.clock.now)
        patient_headers = login_as(api.client, patient, now=api.clock.now)
        gp_headers = login_as(api.client, gp, now=api.clock.now)
    assert gp.totp_secret is not None

    body = {
        "specialty": "general-practice",
        "subject": SUBJECT,
        "description": DESCRIPTION,
        "questionnaire": QUESTIONNAIRE,
    }
    opened = api.client.post("/api/v1/consultations", headers=patient_headers, json=body)
    assert opened.status_code == 201, opened.text
    taken = api.client.post("/api/v1/queue/take", headers=gp_headers)
    assert taken.status_code == 200, taken.text
    assert taken.json()["id"] == opened.json()["id"]
    consultation = f"/api/v1/consultations/{opened.json()['id']}"
    written = api.client.post(
        f"{consultation}/messages",
        headers=gp_headers,
        files=[("files", ("schema.png", png_bytes(), "image/png"))],
        data={"body": "Voir le schéma."},
    )
    assert written.status_code == 201, written.text
    closed = api.client.post(
        f"{consultation}/close", headers=gp_headers, json={"report": "RAS.", "acts": ["TCG"]}
    )
    assert closed.status_code == 200, closed.text

    record = api.client.get(consultation, headers=patient_headers).json()
    assert record["report"] == "RAS."
    assert record["practitioner"]["id"] == str(gp.practitioner_id)
    attachment = written.json()["attachments"][0]["id"]
    download = api.client.get(f"/api/v1/attachments/{attachment}", headers=patient_headers)
    assert download.content == png_bytes()
