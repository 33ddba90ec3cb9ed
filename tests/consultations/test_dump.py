"""A copy of the database, of the blob folder and of the logs holds nothing that a
patient or practitioner wrote: subjects, descriptions, questionnaire answers, messages,
reports, prescriptions, incidents, attachment names and bodies. On SQLite and
PostgreSQL (pg_dump)."""

from __future__ import annotations

import logging

import pytest

from tests.consultations.helpers import Api, jpeg_bytes, pdf_bytes, png_bytes
from tests.ops.test_logs import captured
from tests.patients.test_dump import dump
from tests.plaintext import find_in, read_tree, spellings_of_patient, spellings_of_texts

SUBJECT = "Saignements après la prise de Xarelto"
DESCRIPTION = "Depuis mardi des hématomes inexpliqués sur les cuisses et les gencives qui saignent"
ANSWERS = {
    "symptoms_duration": "4_to_7_days",
    "current_treatments": "Rivaroxaban vingt milligrammes chaque soir",
    "allergies": "Allergie sévère aux pénicillines (œdème de Quincke)",
    "pregnancy": "no",
    "other": "Antécédent d'embolie pulmonaire en juillet",
}
MESSAGES = [
    "Avez-vous pris de l'aspirine ou un anti-inflammatoire récemment ?",
    "Oui, de l'ibuprofène pour une entorse de la cheville gauche",
]
REPORT = "Hémorragie sous anticoagulant potentialisée par l'ibuprofène; arrêt immédiat"
PRESCRIPTION = "Paracétamol un gramme trois fois par jour; NFS et INR sous quarante-huit heures"
INCIDENT = "Coupure de la visioconférence chez la patiente Mme Quincampoix"
FILE_NAMES = ["bilan_INR_Quincampoix.pdf", "hematome_cuisse_droite.png", "gencives_Quincampoix.jpg"]
PDF_TEXT = "INR mesure a 5,8 le 2 novembre - Laboratoire Bioclinic Quincampoix"
PNG_TEXT = "Photo hematome cuisse droite patiente Quincampoix"
JPEG_TEXT = "Gencives Quincampoix saignement spontane"


def write_a_whole_consultation(api: Api) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Write a consultation from opening to report; what was written (health texts,
    then the patient's identity)."""
    patient = api.patient()
    gp = api.practitioner(names=("Hélène", "Vasseur-Quint"), rpps="10012345678")
    consultation = api.open(
        patient,
        subject=SUBJECT,
        description=DESCRIPTION,
        questionnaire=ANSWERS,
        files=[(FILE_NAMES[0], pdf_bytes(PDF_TEXT), "application/pdf")],
    )
    api.take(gp)
    assert api.write(gp, consultation["id"], MESSAGES[0]).status_code == 201
    sent = api.write(
        patient,
        consultation["id"],
        MESSAGES[1],
        files=[
            (FILE_NAMES[1], png_bytes(PNG_TEXT), "image/png"),
            (FILE_NAMES[2], jpeg_bytes(marker=JPEG_TEXT), "image/jpeg"),
        ],
    )
    assert sent.status_code == 201, sent.text
    incident = api.client.post(
        f"/api/v1/consultations/{consultation['id']}/incidents",
        headers=gp.headers,
        json={"description": INCIDENT},
    )
    assert incident.status_code == 201
    closed = api.close(gp, consultation["id"], report=REPORT, prescription=PRESCRIPTION)
    assert closed.status_code == 200, closed.text

    # Everything is there, readable through the app...
    read = api.client.get(f"/api/v1/consultations/{consultation['id']}", headers=patient.headers)
    assert read.json()["report"] == REPORT
    export = api.client.get("/api/v1/patients/me/export", headers=patient.headers)
    assert export.status_code == 200
    assert INCIDENT in export.text
    assert FILE_NAMES[2] in export.text

    texts = spellings_of_texts(
        subject=SUBJECT,
        description=DESCRIPTION,
        answers=[v for k, v in ANSWERS.items() if k not in ("symptoms_duration", "pregnancy")],
        messages=MESSAGES,
        report=REPORT,
        prescription=PRESCRIPTION,
        incident=INCIDENT,
        file_names=FILE_NAMES,
        file_bodies=[PDF_TEXT, PNG_TEXT, JPEG_TEXT],
    )
    return texts, spellings_of_patient(patient.data)


def test_nothing_written_is_readable_in_a_copy(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with captured("json") as lines:  # every logger, as the deployment's JSON lines
        health, identity = write_a_whole_consultation(api)
    spellings = {**health, **identity}
    api.client.close()

    blobs = read_tree(api.blob_dir)
    assert len(blobs) > 1000  # three sealed files are there
    assert find_in(blobs, spellings) == []
    assert caplog.records  # the logs were captured (requests, image parsing…)
    assert find_in(caplog.text.encode("utf-8"), spellings) == []
    assert lines.getvalue().count("\n") >= len(caplog.records)
    assert find_in(lines.getvalue().encode("utf-8"), spellings) == []
    # The emails telling the patient that something waits say nothing else (they are
    # addressed to the patient, so the address is there, but no health data).
    assert read_tree(api.settings.outbox_dir)
    assert find_in(read_tree(api.settings.outbox_dir), health) == []
    copied = dump(api.store)
    assert len(copied) > 10_000
    assert find_in(copied, spellings) == []


def test_the_search_would_find_a_file_stored_in_the_clear(api: Api) -> None:
    """The blob folder search can fail: a body written unsealed is found."""
    spellings, _ = write_a_whole_consultation(api)
    (api.blob_dir / "leak").write_bytes(pdf_bytes(PDF_TEXT))

    hits = find_in(read_tree(api.blob_dir), spellings)
    assert f"file_bodies: {PDF_TEXT!r}" in hits
    assert {hit.split(":")[0] for hit in hits} == {"file_bodies"}
