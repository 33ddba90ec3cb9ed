"""Closing a consultation issues the signed report and prescription, through the HTTP
API on SQLite and PostgreSQL; anyone holding one checks it with the public routes.
Attacks: a flipped byte, a changed prescription, another platform's signature, a
guessed code, a copy of the database, and a close when the key is missing."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pikepdf
from pypdf import PdfReader
from sqlalchemy import select, text

from hippocrate.consultations.models import Consultation, ConsultationStatus, Message
from hippocrate.documents import render
from hippocrate.documents.models import IssuedDocument
from hippocrate.documents.signing import sign_pdf
from hippocrate.vault.documents import create_document_signing_key, load_document_signing_key
from tests.conftest import Store
from tests.consultations.helpers import Api, running_api

PRESCRIPTION = "Amoxicilline 1 g : matin et soir pendant 6 jours\nParacétamol 1 g si fièvre"


def _closed(api: Api) -> tuple[Any, dict[str, bytes], str]:
    patient = api.patient()
    doctor = api.practitioner(names=("Claire", "Dubreuil"), rpps="10003456789")
    opened = api.open(patient)
    api.take(doctor)
    closed = api.close(doctor, opened["id"], prescription=PRESCRIPTION)
    assert closed.status_code == 200, closed.text
    messages = api.client.get(
        f"/api/v1/consultations/{opened['id']}/messages", headers=patient.headers
    ).json()["items"]
    last = messages[-1]
    assert last["author"] == "practitioner"
    files = {}
    for attachment in last["attachments"]:
        response = api.client.get(
            f"/api/v1/attachments/{attachment['id']}", headers=patient.headers
        )
        assert response.status_code == 200
        files[attachment["filename"]] = response.content
    return patient, files, opened["id"]


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _code(pdf: bytes) -> str:
    found = re.search(r"Code de vérification : ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", _text(pdf))
    assert found is not None
    return found.group(1)


def _check_file(api: Api, content: bytes) -> dict[str, Any]:
    response = api.client.post(
        "/api/v1/documents/verify/file",
        content=content,
        headers={"Content-Type": "application/pdf"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_closing_issues_a_prescription_a_pharmacist_can_check(api: Api) -> None:
    patient, files, _ = _closed(api)

    assert set(files) == {"compte-rendu-hippocrate.pdf", "ordonnance-hippocrate.pdf"}
    prescription = files["ordonnance-hippocrate.pdf"]
    printed = _text(prescription)
    for expected in (
        "Dr Claire Dubreuil",
        "RPPS : 10003456789",
        f"{patient.data.given_names} {patient.data.family_name}",
        "1. Amoxicilline 1 g",
        "2. Paracétamol 1 g si fièvre",
        "téléconsultation",
    ):
        assert expected in printed, expected

    answer = _check_file(api, prescription)
    assert answer == {
        "issued": True,
        "unaltered": True,
        "reason": "Hippocrate issued this document, and it is unchanged",
    }
    by_code = api.client.post("/api/v1/documents/verify/code", json={"code": _code(prescription)})
    assert by_code.json()["issued"] is True
    # Typed by hand: spaces, lower case, O for 0 are forgiven.
    typed = _code(prescription).replace("-", " ").lower().replace("0", "o")
    again = api.client.post("/api/v1/documents/verify/code", json={"code": typed})
    assert again.json()["issued"] is True


def test_an_altered_or_foreign_document_is_refused(api: Api, tmp_path: Path) -> None:
    _, files, _ = _closed(api)
    prescription = files["ordonnance-hippocrate.pdf"]

    flipped = bytearray(prescription)
    flipped[prescription.index(b"stream") + 30] ^= 0x01
    assert _check_file(api, bytes(flipped))["issued"] is False

    # The classic forgery: open the real prescription, add to it, save.
    with pikepdf.open(io.BytesIO(prescription)) as pdf:
        pdf.add_blank_page()
        changed = io.BytesIO()
        pdf.save(changed)
    answer = _check_file(api, changed.getvalue())
    assert answer["issued"] is False
    assert answer["unaltered"] is False

    # Signed with a key of another platform (another Hippocrate's, say).
    create_document_signing_key(tmp_path / "theirs.key")
    theirs = load_document_signing_key(tmp_path / "theirs.key")
    lookalike = render.prescription_pdf(
        font=render.font_path(None),
        prescriber=render.Prescriber("Claire", "Dubreuil", "Médecine générale", "10003456789"),
        patient=render.Person("Lucie", "Martin", date(1985, 6, 14)),
        items=["Amoxicilline 1 g : matin et soir pendant 6 jours"],
        issued=render.Issued(_code(prescription), datetime.now(UTC), "https://h.example/v"),
    )
    forged = sign_pdf(lookalike, theirs)
    answer = _check_file(api, forged)
    assert answer["issued"] is False
    assert answer["reason"] == "this file is not signed by this Hippocrate platform"

    assert _check_file(api, b"%PDF-1.4 nothing")["issued"] is False
    unknown = api.client.post("/api/v1/documents/verify/code", json={"code": "ABCD-EFGH-JKMN"})
    assert unknown.json()["issued"] is False
    malformed = api.client.post("/api/v1/documents/verify/code", json={"code": "hello"})
    assert malformed.json()["issued"] is False


def test_the_answer_says_nothing_of_the_document(api: Api) -> None:
    patient, files, _ = _closed(api)
    prescription = files["ordonnance-hippocrate.pdf"]
    by_code = api.client.post("/api/v1/documents/verify/code", json={"code": _code(prescription)})
    by_file = api.client.post(
        "/api/v1/documents/verify/file",
        content=prescription,
        headers={"Content-Type": "application/pdf"},
    )
    for response in (by_code, by_file):
        assert set(response.json()) == {"issued", "unaltered", "reason"}
        for secret in (patient.data.family_name, patient.data.given_names, "Amoxicilline"):
            assert secret not in response.text


def test_a_copy_of_the_database_holds_no_code_and_no_document(api: Api) -> None:
    patient, files, _ = _closed(api)
    codes = [_code(content) for content in files.values()]
    with api.store.engine.connect() as connection:
        columns = connection.execute(text("SELECT * FROM issued_documents")).mappings().all()
    assert len(columns) == 2
    assert set(columns[0]) == {"id", "attachment_id", "code_digest", "content_digest"}
    dump = repr(columns).encode()
    for code in codes:
        assert code.encode() not in dump
        assert code.replace("-", "").encode() not in dump
    if api.store.path is not None:
        raw = api.store.path.read_bytes()
        for code in codes:
            assert code.encode() not in raw
        assert b"Amoxicilline" not in raw
        assert patient.data.family_name.encode() not in raw


def test_checks_are_throttled_per_address(store: Store, tmp_path: Path) -> None:
    with running_api(store, tmp_path, document_checks_per_client=3) as api:
        answers = [
            api.client.post("/api/v1/documents/verify/code", json={"code": "ABCD-EFGH-JKMN"})
            for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1].headers["Retry-After"]) > 0


def test_without_its_signing_key_nothing_closes(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "document-signing.key"
    with running_api(store, tmp_path, document_signing_key_file=missing) as api:
        patient = api.patient()
        doctor = api.practitioner()
        opened = api.open(patient)
        api.take(doctor)
        with api.store.sessions() as session:
            before = session.scalars(select(Message.id)).all()

        refused = api.client.post(
            f"/api/v1/consultations/{opened['id']}/close",
            headers=doctor.headers,
            json={"report": "Eczéma de contact probable.", "acts": ["TCG"]},
        )

        assert refused.status_code == 503, refused.text
        assert str(missing) not in refused.text  # the operator's log says where, not the API
        with api.store.sessions() as session:
            status = session.scalar(select(Consultation.status))
            messages = session.scalars(select(Message.id)).all()
            documents = session.scalars(select(IssuedDocument)).all()
        assert status is ConsultationStatus.IN_PROGRESS
        assert documents == []
        assert messages == before  # no closing message
