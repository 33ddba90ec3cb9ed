"""The patient's export as a FHIR R4 Bundle, through the HTTP API, on SQLite and
PostgreSQL: every resource validates, and it carries exactly what the JSON export does."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from hippocrate.interop import fhir
from tests.consultations.helpers import Api, pdf_bytes

PRESCRIPTION = (
    "Desloratadine 5 mg, un comprimé le soir pendant 15 jours\n\nÉmollient deux fois par jour"
)


def _closed_consultation(api: Api) -> tuple[Any, Any, str, bytes]:
    patient = api.patient()
    dermatologist = api.practitioner("dermatology", names=("Inès", "Caron"), rpps="10003456789")
    scan = pdf_bytes("Photo des lésions")
    opened = api.open(
        patient, specialty="dermatology", files=[("lesions.pdf", scan, "application/pdf")]
    )
    api.clock.advance(minutes=5)
    api.take(dermatologist)
    api.clock.advance(minutes=2)
    assert api.write(dermatologist, opened["id"], "Depuis quand ?").status_code == 201
    api.clock.advance(minutes=2)
    assert api.write(patient, opened["id"], "Une semaine.").status_code == 201
    api.clock.advance(minutes=2)
    closed = api.close(
        dermatologist,
        opened["id"],
        report="Eczéma de contact probable.",
        prescription=PRESCRIPTION,
    )
    assert closed.status_code == 200, closed.text
    return patient, dermatologist, opened["id"], scan


def _by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        grouped.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return grouped


def test_the_fhir_export_validates_and_carries_the_whole_record(api: Api) -> None:
    patient, dermatologist, consultation_id, scan = _closed_consultation(api)

    response = api.client.get("/api/v1/patients/me/export/fhir", headers=patient.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert "attachment" in response.headers["content-disposition"]
    bundle = json.loads(response.content)
    Bundle.model_validate(bundle)  # every resource is valid FHIR
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    resources = _by_type(bundle)
    assert Counter({kind: len(items) for kind, items in resources.items()}) == Counter(
        Patient=1,
        Practitioner=1,
        Encounter=1,
        QuestionnaireResponse=1,
        # The opening message with its file, the question, the answer, and the closing
        # message carrying the signed report and prescription PDFs.
        Communication=4,
        # The attachment, the two signed PDFs, and the report as text.
        DocumentReference=4,
        MedicationRequest=2,  # one per prescription line, blank lines skipped
    )

    (person,) = resources["Patient"]
    assert person["id"] == str(patient.patient_id)
    assert person["meta"]["profile"] == [fhir.FR_CORE_PATIENT]
    assert person["name"][0]["family"] == patient.data.family_name
    assert person["birthDate"] == patient.data.birth_date.isoformat()
    (nir,) = person["identifier"]
    assert (nir["system"], nir["value"]) == (fhir.NIR_SYSTEM, patient.data.nir)
    assert {t["system"]: t["value"] for t in person["telecom"]} == {
        "email": patient.data.email,
        "phone": patient.data.phone,
    }

    (doctor,) = resources["Practitioner"]
    assert doctor["id"] == str(dermatologist.practitioner_id)
    assert doctor["identifier"][0] == {
        "type": {"coding": [{"system": fhir.FR_CORE_V2_0203, "code": "IDNPS"}]},
        "system": fhir.IDNPS_SYSTEM,
        "value": "810003456789",
    }

    (encounter,) = resources["Encounter"]
    assert encounter["id"] == consultation_id
    assert (encounter["status"], encounter["class"]["code"]) == ("finished", "VR")
    assert encounter["participant"][0]["individual"]["reference"] == (
        f"urn:uuid:{dermatologist.practitioner_id}"
    )

    lines = [r["medicationCodeableConcept"]["text"] for r in resources["MedicationRequest"]]
    assert lines == [
        "Desloratadine 5 mg, un comprimé le soir pendant 15 jours",
        "Émollient deux fois par jour",
    ]
    assert {r["requester"]["reference"] for r in resources["MedicationRequest"]} == {
        f"urn:uuid:{dermatologist.practitioner_id}"
    }

    documents = {d.get("description", "report"): d for d in resources["DocumentReference"]}
    attached = documents["lesions.pdf"]["content"][0]["attachment"]
    assert base64.b64decode(attached["data"]) == scan
    report = next(d for d in resources["DocumentReference"] if d["id"].endswith("-report"))
    assert base64.b64decode(report["content"][0]["attachment"]["data"]).decode() == (
        "Eczéma de contact probable."
    )

    # Every reference points at a resource in the bundle.
    urls = {entry["fullUrl"] for entry in bundle["entry"]}
    references = [
        value
        for value in _walk(bundle["entry"])
        if isinstance(value, str) and value.startswith("urn:uuid:")
    ]
    assert set(references) <= urls


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference":
                yield value
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_the_fhir_export_says_what_the_json_export_says(api: Api) -> None:
    patient, _, _, _ = _closed_consultation(api)

    as_json = api.client.get("/api/v1/patients/me/export", headers=patient.headers).json()
    as_fhir = api.client.get("/api/v1/patients/me/export/fhir", headers=patient.headers).json()

    (consultation,) = as_json["consultations"]
    resources = _by_type(as_fhir)
    communications = {c["id"]: c for c in resources["Communication"]}
    for message in consultation["messages"]:
        sent = communications[message["id"]]
        texts = [p["contentString"] for p in sent["payload"] if "contentString" in p]
        assert texts == ([message["body"]] if message["body"] else [])
    (answers,) = resources["QuestionnaireResponse"]
    assert {i["linkId"]: i["answer"][0]["valueString"] for i in answers["item"]} == (
        consultation["questionnaire"]
    )


def test_staff_get_no_fhir_export(api: Api) -> None:
    doctor = api.practitioner()

    response = api.client.get("/api/v1/patients/me/export/fhir", headers=doctor.headers)

    assert response.status_code == 404, response.text


def test_a_bundle_that_does_not_validate_is_never_sent_and_names_no_value() -> None:
    export = {
        "exported_at": "2026-12-01T10:00:00+00:00",
        "patient": {
            "id": "7d5c2d7e-0b47-4d0e-a0de-3f1c8f6b1e11",
            "given_names": "Lucie",
            "family_name": "Martin",
            "birth_date": "not a date 1985",
            "sex": "female",
            "email": "lucie@example.org",
            "phone": "+33612345678",
            "address": {"line1": "1 rue X", "postal_code": "75001", "city": "Paris"},
            "nir": None,
        },
        "consultations": [],
    }
    try:
        fhir.bundle_of(export)
    except fhir.InvalidFhirBundle as refused:
        message = str(refused)
    else:
        raise AssertionError("an invalid birth date was exported")
    assert "birthDate" in message
    assert "1985" not in message
    assert "Martin" not in message
