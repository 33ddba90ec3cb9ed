"""A patient's export as a FHIR R4 Bundle: what another health system can read.

Built from the patient's own export (``patients.service.export_own_data``), so it reads
nothing more and goes through the same policy and the same audited unit of work. Every
bundle is validated against the FHIR models before it leaves (``fhir.resources``, R4B
models: the resources used here are unchanged from R4).

Mapping (docs/INTEROP.md): Patient (FR Core Patient), Practitioner (RPPS as IDNPS),
Encounter per consultation (virtual), QuestionnaireResponse per questionnaire,
Communication per message, DocumentReference per attachment and per report,
MedicationRequest per prescription line.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError

MEDIA_TYPE = "application/fhir+json"

FR_CORE_PATIENT = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
FR_CORE_PRACTITIONER = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-practitioner"
# The NIR's OID (INS-NIR). The NIR a patient typed has not been qualified by the INSi
# service, so it travels as a social security number (type NH), never as a qualified
# INS identity (FR Core reserves the INS slices for qualified identities).
NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FR_CORE_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
LOINC = "http://loinc.org"
CONSULT_NOTE = "11488-4"

_ENCOUNTER_STATUS = {
    "requested": "planned",
    "in_progress": "in-progress",
    "closed": "finished",
    "cancelled": "cancelled",
}
_GENDER = {"F": "female", "M": "male", "X": "other"}


class InvalidFhirBundle(RuntimeError):
    """The bundle built from an export does not validate: a defect, never sent. Its
    message names the failing places and rules, never a value (values are health
    data)."""


def _ref(kind: str, identifier: object) -> dict[str, str]:
    return {"reference": f"urn:uuid:{identifier}", "type": kind}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def patient_resource(identity: dict[str, Any]) -> dict[str, Any]:
    address = identity.get("address") or {}
    lines = [line for line in (address.get("line1"), address.get("line2")) if line]
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": identity["id"],
        "meta": {"profile": [FR_CORE_PATIENT]},
        "name": [
            {
                "use": "official",
                "family": identity["family_name"],
                "given": identity["given_names"].split(),
            }
        ],
        "birthDate": identity["birth_date"],
        "telecom": [
            {"system": "email", "value": identity["email"]},
            {"system": "phone", "value": identity["phone"]},
        ],
        "address": [
            {
                "use": "home",
                "line": lines,
                "postalCode": address.get("postal_code"),
                "city": address.get("city"),
                "country": address.get("country", "FR"),
            }
        ],
    }
    gender = _GENDER.get(str(identity.get("sex")))
    resource["gender"] = gender or "unknown"
    if identity.get("nir"):
        resource["identifier"] = [
            {
                "use": "official",
                "type": {"coding": [{"system": V2_0203, "code": "NH"}]},
                "system": NIR_SYSTEM,
                "value": identity["nir"],
            }
        ]
    return resource


def practitioner_resource(practitioner: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": practitioner["id"],
        "meta": {"profile": [FR_CORE_PRACTITIONER]},
        "name": [
            {
                "use": "official",
                "family": practitioner["family_name"],
                "given": practitioner["given_names"].split(),
                "prefix": ["Dr"],
            }
        ],
        "qualification": [{"code": {"text": practitioner["specialty"]}}],
    }
    if practitioner.get("rpps"):
        # The national professional id (IDNPS) of an RPPS holder is 8 + the RPPS number.
        resource["identifier"] = [
            {
                "type": {"coding": [{"system": FR_CORE_V2_0203, "code": "IDNPS"}]},
                "system": IDNPS_SYSTEM,
                "value": f"8{practitioner['rpps']}",
            }
        ]
    return resource


def _encounter(consultation: dict[str, Any], patient_id: str) -> dict[str, Any]:
    end = consultation.get("closed_at") or consultation.get("cancelled_at")
    period = {"start": consultation.get("taken_at") or consultation["created_at"]}
    if end:
        period["end"] = end
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": consultation["id"],
        "status": _ENCOUNTER_STATUS[consultation["status"]],
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "serviceType": {"text": consultation["specialty"]},
        "subject": _ref("Patient", patient_id),
        "period": period,
        "reasonCode": [{"text": consultation["subject"]}] if consultation.get("subject") else [],
    }
    if consultation.get("description"):
        resource["text"] = {
            "status": "generated",
            "div": _div(consultation["description"]),
        }
    practitioner = consultation.get("practitioner")
    if practitioner:
        resource["participant"] = [{"individual": _ref("Practitioner", practitioner["id"])}]
    if not resource["reasonCode"]:
        del resource["reasonCode"]
    return resource


def _div(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escaped}</p></div>'


def _questionnaire(consultation: dict[str, Any], patient_id: str) -> dict[str, Any] | None:
    answers = consultation.get("questionnaire") or {}
    if not answers:
        return None
    return {
        "resourceType": "QuestionnaireResponse",
        "id": _derived(consultation["id"], "questionnaire"),
        "status": "completed",
        "subject": _ref("Patient", patient_id),
        "encounter": _ref("Encounter", consultation["id"]),
        "authored": consultation["created_at"],
        "item": [
            {"linkId": str(question), "answer": [{"valueString": str(answer)}]}
            for question, answer in sorted(answers.items())
        ],
    }


def _derived(identifier: str, what: str) -> str:
    """A stable id for a resource that has no row of its own (a FHIR id is at most 64
    characters of [A-Za-z0-9-.])."""
    return f"{identifier}-{what}"


def _attachment_document(
    attachment: dict[str, Any], consultation: dict[str, Any], patient_id: str
) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": attachment["id"],
        "status": "current",
        "subject": _ref("Patient", patient_id),
        "date": attachment["created_at"],
        "description": attachment["filename"],
        "content": [
            {
                "attachment": {
                    "contentType": attachment["media_type"],
                    "data": attachment["content_base64"],
                    "title": attachment["filename"],
                    "size": attachment["size"],
                    "creation": attachment["created_at"],
                }
            }
        ],
        "context": {"encounter": [_ref("Encounter", consultation["id"])]},
    }


def _messages(consultation: dict[str, Any], patient_id: str) -> Iterator[dict[str, Any]]:
    practitioner = consultation.get("practitioner")
    for message in consultation.get("messages", []):
        documents = [
            _attachment_document(attachment, consultation, patient_id)
            for attachment in message.get("attachments", [])
        ]
        sender = (
            _ref("Practitioner", practitioner["id"])
            if message["author"] == "practitioner" and practitioner
            else _ref("Patient", patient_id)
        )
        recipient = (
            _ref("Patient", patient_id)
            if message["author"] == "practitioner" or not practitioner
            else _ref("Practitioner", practitioner["id"])
        )
        payload: list[dict[str, Any]] = []
        if message.get("body"):
            payload.append({"contentString": message["body"]})
        payload.extend(
            {"contentReference": _ref("DocumentReference", document["id"])}
            for document in documents
        )
        yield {
            "resourceType": "Communication",
            "id": message["id"],
            "status": "completed",
            "subject": _ref("Patient", patient_id),
            "encounter": _ref("Encounter", consultation["id"]),
            "sent": message["created_at"],
            "sender": sender,
            "recipient": [recipient],
            "payload": payload or [{"contentString": ""}],
        }
        yield from documents


def _report(consultation: dict[str, Any], patient_id: str) -> dict[str, Any] | None:
    report = consultation.get("report")
    if not report:
        return None
    practitioner = consultation.get("practitioner")
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": _derived(consultation["id"], "report"),
        "status": "current",
        "type": {
            "coding": [{"system": LOINC, "code": CONSULT_NOTE, "display": "Consult note"}],
            "text": "Compte rendu de téléconsultation",
        },
        "subject": _ref("Patient", patient_id),
        "date": consultation.get("closed_at") or consultation["created_at"],
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "fr-FR",
                    "data": base64.b64encode(report.encode("utf-8")).decode("ascii"),
                    "title": "Compte rendu",
                }
            }
        ],
        "context": {"encounter": [_ref("Encounter", consultation["id"])]},
    }
    if practitioner:
        resource["author"] = [_ref("Practitioner", practitioner["id"])]
    return resource


def prescription_lines(prescription: str | None) -> list[str]:
    """The items of a prescription: one per non-empty line."""
    return [line.strip() for line in (prescription or "").splitlines() if line.strip()]


def _prescriptions(consultation: dict[str, Any], patient_id: str) -> Iterator[dict[str, Any]]:
    practitioner = consultation.get("practitioner")
    for index, line in enumerate(prescription_lines(consultation.get("prescription")), 1):
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": _derived(consultation["id"], f"rx-{index}"),
            "status": "completed" if consultation["status"] == "closed" else "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": line},
            "subject": _ref("Patient", patient_id),
            "encounter": _ref("Encounter", consultation["id"]),
            "authoredOn": consultation.get("closed_at") or consultation["created_at"],
            "note": [{"text": "Prescription établie à l'issue d'une téléconsultation"}],
        }
        if practitioner:
            resource["requester"] = _ref("Practitioner", practitioner["id"])
        yield resource


def _consultation_resources(
    consultation: dict[str, Any], patient_id: str
) -> Iterator[dict[str, Any]]:
    yield _encounter(consultation, patient_id)
    questionnaire = _questionnaire(consultation, patient_id)
    if questionnaire is not None:
        yield questionnaire
    yield from _messages(consultation, patient_id)
    report = _report(consultation, patient_id)
    if report is not None:
        yield report
    yield from _prescriptions(consultation, patient_id)


def _practitioners(consultations: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    for consultation in consultations:
        practitioner = consultation.get("practitioner")
        if practitioner and practitioner["id"] not in seen:
            seen.add(practitioner["id"])
            yield practitioner_resource(practitioner)


def bundle_of(export: dict[str, Any]) -> dict[str, Any]:
    """The FHIR R4 Bundle (type collection) of a patient's export, validated."""
    identity = export["patient"]
    patient_id = identity["id"]
    consultations = export.get("consultations", [])
    resources = [patient_resource(identity), *_practitioners(consultations)]
    for consultation in consultations:
        resources.extend(_consultation_resources(consultation, patient_id))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": export["exported_at"],
        "entry": [_entry(resource) for resource in resources],
    }
    validate(bundle)
    return bundle


def validate(bundle: dict[str, Any]) -> Bundle:
    """The bundle as FHIR models; ``InvalidFhirBundle`` if any resource is invalid."""
    try:
        return Bundle.model_validate(bundle)
    except ValidationError as exc:
        places = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidFhirBundle(f"invalid FHIR bundle: {places}") from None
