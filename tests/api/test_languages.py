"""Issue 9, languages: problem details in French by default, in English when the request
asks for it (``Accept-Language``), and the questionnaire's labels in both.

Through the real API on SQLite (the language does not depend on the store). The suite's
clients ask for English (tests/conftest.py): these tests remove that header to see the
default, or set their own.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from fastapi import FastAPI

from hippocrate.api import problems
from hippocrate.consultations.errors import QueueEmpty
from hippocrate.consultations.schemas import SPECIALTIES
from hippocrate.errors import HippocrateError
from hippocrate.guard.state import GuardUnavailable
from hippocrate.i18n import negotiate
from hippocrate.vault import DecryptionError
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    Api,
    assert_problem,
    png_bytes,
    running_api,
)
from tests.identity.helpers import patient_data

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture
def api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(sqlite_store, tmp_path) as api:
        del api.client.headers["Accept-Language"]  # as a client that says nothing
        yield api


def _asking(language: str | None) -> dict[str, str]:
    return {} if language is None else {"Accept-Language": language}


def _says_its_language(response: Any, language: str) -> None:
    assert response.headers["content-language"] == language
    assert "accept-language" in response.headers["vary"].lower()


# -- negotiation -------------------------------------------------------------------------

# (Accept-Language, the language answered)
NEGOTIATED = [
    (None, "fr"),
    ("", "fr"),
    ("en", "en"),
    ("EN-us", "en"),
    ("en-GB;q=0.9, fr;q=0.1", "en"),
    ("fr;q=0.1, en-GB;q=0.9", "en"),
    ("de", "fr"),  # unsupported: the default
    ("de, en;q=0.5", "en"),
    ("en;q=0", "fr"),  # q=0 refuses English
    ("*", "fr"),
    ("fr-CA, en", "fr"),
    ("en;q=not-a-number, fr", "fr"),
    ("x" * 10_000, "fr"),
]


@pytest.mark.parametrize(("header", "language"), NEGOTIATED)
def test_accept_language_is_negotiated_with_french_by_default(
    header: str | None, language: str
) -> None:
    assert negotiate(header) == language


# -- domain refusals ---------------------------------------------------------------------


def test_a_refusal_is_in_french_by_default(api: Api) -> None:
    response = api.client.get("/api/v1/consultations")
    body = assert_problem(response, 401)
    assert body["title"] == "Non authentifié"
    assert body["detail"] == "authentification requise"
    _says_its_language(response, "fr")
    assert response.headers["www-authenticate"] == "Bearer"  # the error's headers stay


@pytest.mark.parametrize("header", ["en", "en-GB;q=0.9, fr;q=0.1"])
def test_a_refusal_is_in_english_when_asked(api: Api, header: str) -> None:
    response = api.client.get("/api/v1/consultations", headers={"Accept-Language": header})
    body = assert_problem(response, 401)
    assert body["title"] == "Unauthorized"
    assert body["detail"] == "authentication required"
    _says_its_language(response, "en")


def test_an_unsupported_language_falls_back_to_french(api: Api) -> None:
    response = api.client.get("/api/v1/consultations", headers={"Accept-Language": "de-DE, it"})
    assert assert_problem(response, 401)["detail"] == "authentification requise"
    _says_its_language(response, "fr")


@pytest.mark.parametrize(
    ("language", "title", "detail"),
    [
        (None, "File vide", "aucune consultation n'attend dans la file dermatology"),
        ("en", "Queue empty", "no consultation is waiting in the dermatology queue"),
    ],
)
def test_a_message_with_a_value_is_translated_with_the_value_in_place(
    api: Api, language: str | None, title: str, detail: str
) -> None:
    dermatologist = api.practitioner(specialty="dermatology")
    response = api.client.post(
        "/api/v1/queue/take", headers={**dermatologist.headers, **_asking(language)}
    )
    body = assert_problem(response, 409)
    assert (body["title"], body["detail"]) == (title, detail)
    # The English text stays the error's own (logs, the command line).
    assert str(QueueEmpty("dermatology")) == "no consultation is waiting in the dermatology queue"


def test_a_word_inside_a_message_is_translated_with_it(api: Api) -> None:
    patient = api.patient()
    opened = api.open(patient)
    cancel = f"/api/v1/consultations/{opened['id']}/cancel"
    assert api.client.post(cancel, headers=patient.headers).status_code == 200
    again = api.client.post(cancel, headers=patient.headers)
    assert assert_problem(again, 409)["detail"] == (
        "cette consultation est annulée : elle ne peut pas être annulée"
    )
    english = api.client.post(cancel, headers={**patient.headers, "Accept-Language": "en"})
    assert assert_problem(english, 409)["detail"] == (
        "this consultation is cancelled: it cannot be cancelled"
    )


def test_an_attachment_refusal_translates_its_reason_and_its_words(api: Api) -> None:
    patient = api.patient()
    opened = api.open(patient)
    mislabelled = [("scan.pdf", png_bytes(), "application/pdf")]
    french = api.write(patient, opened["id"], "Voici le scan", files=mislabelled)
    body = assert_problem(french, 422)
    assert body["title"] == "Pièce jointe refusée"
    assert body["detail"] == (
        "fichier 1 refusé : le nom indique .pdf mais le contenu est une image PNG"
    )
    api.client.headers["Accept-Language"] = "en"
    english = api.write(patient, opened["id"], "Voici le scan", files=mislabelled)
    assert assert_problem(english, 422)["detail"] == (
        "file 1 refused: the name says .pdf but the content is a PNG image"
    )


# -- validation and routing --------------------------------------------------------------


def test_a_validation_error_says_its_title_and_detail_in_the_language(api: Api) -> None:
    patient = api.patient()
    french = api.client.post("/api/v1/consultations", headers=patient.headers, json={})
    body = assert_problem(french, 422)
    assert body["title"] == "Requête invalide"
    assert body["detail"] == "la requête ne correspond pas au schéma"
    assert body["errors"]  # per field, as pydantic writes them (English)
    _says_its_language(french, "fr")
    english = api.client.post(
        "/api/v1/consultations", headers={**patient.headers, "Accept-Language": "en"}, json={}
    )
    assert assert_problem(english, 422)["detail"] == "the request does not match the schema"
    assert english.json()["errors"] == body["errors"]


@pytest.mark.parametrize(
    ("language", "not_found", "not_allowed"),
    [
        (None, "Introuvable", "Méthode non autorisée"),
        ("en", "Not Found", "Method Not Allowed"),
    ],
)
def test_routing_errors_are_translated(
    api: Api, language: str | None, not_found: str, not_allowed: str
) -> None:
    missing = api.client.get("/api/v1/nothing-here", headers=_asking(language))
    assert missing.status_code == 404
    assert missing.json()["title"] == not_found
    assert missing.json()["detail"] == not_found  # Starlette's detail is the phrase
    _says_its_language(missing, language or "fr")
    wrong = api.client.delete("/api/v1/consultations/catalogue", headers=_asking(language))
    assert wrong.status_code == 405
    assert wrong.json()["title"] == not_allowed
    assert wrong.headers["allow"]


# -- infrastructure: 503 and 500 ---------------------------------------------------------


@pytest.fixture
def failing() -> Iterator[TestClient]:
    app = FastAPI()
    problems.install(app)

    @app.get("/api/guard-down")
    def guard_down() -> None:
        raise GuardUnavailable("no guard state")

    @app.get("/api/undecryptable")
    def undecryptable() -> None:
        raise DecryptionError("tampered")

    @app.get("/api/bug")
    def bug() -> None:
        raise RuntimeError("a bug")

    @app.get("/api/untranslated")
    def untranslated() -> None:
        raise Unmarked("a message of a file not marked yet, {n} value", n=1)

    with TestClient(app, raise_server_exceptions=False) as client:
        del client.headers["Accept-Language"]
        yield client


@pytest.mark.parametrize(
    ("path", "status", "french", "english"),
    [
        (
            "/api/guard-down",
            503,
            (
                "Temporairement indisponible",
                "les données des patients ne peuvent pas être servies pour le moment",
            ),
            ("Temporarily unavailable", "patient data cannot be served right now"),
        ),
        (
            "/api/undecryptable",
            503,
            ("Données indisponibles", "cet enregistrement ne peut pas être déchiffré"),
            ("Data unavailable", "this record cannot be decrypted"),
        ),
        (
            "/api/bug",
            500,
            ("Erreur interne du serveur", "une erreur inattendue s'est produite"),
            ("Internal Server Error", "an unexpected error occurred"),
        ),
    ],
)
def test_unavailable_and_unexpected_answers_are_translated(
    failing: TestClient,
    path: str,
    status: int,
    french: tuple[str, str],
    english: tuple[str, str],
) -> None:
    for headers, (title, detail), language in (
        ({}, french, "fr"),
        ({"Accept-Language": "en"}, english, "en"),
    ):
        response = failing.get(path, headers=headers)
        assert response.status_code == status
        assert (response.json()["title"], response.json()["detail"]) == (title, detail)
        _says_its_language(response, language)


class Unmarked(HippocrateError):
    status = 409
    title = "Not in any catalogue"


def test_a_message_without_a_translation_is_answered_in_english(failing: TestClient) -> None:
    response = failing.get("/api/untranslated")
    assert response.status_code == 409
    assert response.json()["title"] == "Not in any catalogue"
    assert response.json()["detail"] == "a message of a file not marked yet, 1 value"
    _says_its_language(response, "fr")  # the answer's language, though nothing moved


# -- questionnaire labels ----------------------------------------------------------------


def test_the_catalogue_labels_the_questionnaire_in_both_languages(api: Api) -> None:
    patient = api.patient()
    french = api.client.get("/api/v1/consultations/catalogue", headers=patient.headers)
    english = api.client.get(
        "/api/v1/consultations/catalogue", headers={**patient.headers, "Accept-Language": "en"}
    )
    assert french.status_code == english.status_code == 200
    _says_its_language(french, "fr")
    _says_its_language(english, "en")
    fr = {q["code"]: q for q in french.json()["questions"]}
    en = {q["code"]: q for q in english.json()["questions"]}
    assert fr["symptoms_duration"]["label"] == "Depuis combien de temps avez-vous ces symptômes ?"
    assert en["symptoms_duration"]["label"] == "How long have you had these symptoms?"
    assert fr["pregnancy"]["choice_labels"]["unsure"] == "Je ne sais pas"
    assert en["pregnancy"]["choice_labels"]["unsure"] == "I don't know"
    for code, question in fr.items():
        assert question["choices"] == en[code]["choices"]  # the codes do not change
        assert question["label"] != en[code]["label"]  # every label is translated
        for choice in question["choices"]:
            assert question["choice_labels"][choice] != en[code]["choice_labels"][choice]


def test_the_answers_of_a_consultation_are_labelled_in_the_readers_language(api: Api) -> None:
    patient = api.patient()
    gp = api.practitioner()
    opened = api.open(patient)
    path = f"/api/v1/consultations/{opened['id']}"
    assert api.take(gp)["answers"][0]["answer_label"] == "De 4 à 7 jours"
    english = api.client.get(path, headers={**gp.headers, "Accept-Language": "en"})
    assert english.status_code == 200
    _says_its_language(english, "en")
    answers = {a["code"]: a for a in english.json()["answers"]}
    assert answers["symptoms_duration"]["question"] == "How long have you had these symptoms?"
    assert answers["symptoms_duration"]["answer_label"] == "4 to 7 days"
    assert answers["pregnancy"]["answer_label"] == "Not applicable"
    # What the patient wrote is given back as written, in either language.
    assert answers["current_treatments"]["answer_label"] == QUESTIONNAIRE["current_treatments"]
    french = api.client.get(path, headers=gp.headers).json()
    assert french["questionnaire"] == english.json()["questionnaire"] == QUESTIONNAIRE


# -- the body limit, answered before the app ---------------------------------------------


@pytest.mark.parametrize(
    ("language", "title", "detail"),
    [
        (None, "Corps de requête trop volumineux", "le corps de la requête dépasse 1024 octets"),
        ("en", "Request body too large", "the request body is larger than 1024 bytes"),
    ],
)
def test_the_body_limit_answers_in_the_language(
    sqlite_store: Store, tmp_path: Path, language: str | None, title: str, detail: str
) -> None:
    with running_api(sqlite_store, tmp_path, max_body_bytes=1024) as api:
        del api.client.headers["Accept-Language"]
        response = api.client.post(
            "/api/v1/auth/login",
            headers={"Content-Type": "application/json", **_asking(language)},
            content=b"[" * 2048,
        )
    body = assert_problem(response, 413)
    assert (body["title"], body["detail"]) == (title, detail)
    _says_its_language(response, language or "fr")


# -- an identifier refused by a validator ------------------------------------------------


def test_an_identifier_refused_in_validation_says_why_in_the_language(api: Api) -> None:
    body = patient_data(email="lang.test@example.org").model_dump(mode="json")
    body.update(password="a long enough passphrase for this test", phone="+33 1 23")
    french = api.client.post("/api/v1/auth/register", json=body)
    english = api.client.post("/api/v1/auth/register", json=body, headers={"Accept-Language": "en"})
    assert assert_problem(french, 422)["detail"] == "la requête ne correspond pas au schéma"
    [(loc, fr)] = [(e["loc"], e["msg"]) for e in french.json()["errors"]]
    [(same, en)] = [(e["loc"], e["msg"]) for e in english.json()["errors"]]
    assert loc == same
    assert loc[-1] == "phone"
    assert en == ("This phone number does not exist (wrong number of digits or unknown prefix).")
    assert fr == (
        "Ce numéro de téléphone n'existe pas (nombre de chiffres erroné ou préfixe inconnu)."
    )


def test_a_pdf_refusal_is_translated_with_what_the_file_carries(api: Api) -> None:
    document = pikepdf.new()
    document.add_blank_page()
    document.Root.OpenAction = pikepdf.Dictionary(
        S=pikepdf.Name.JavaScript, JS=pikepdf.String("app.alert(1)")
    )
    scripted = io.BytesIO()
    document.save(scripted)
    patient = api.patient()
    opened = api.open(patient)
    files = [("bilan.pdf", scripted.getvalue(), "application/pdf")]
    french = api.write(patient, opened["id"], "Voici le bilan", files=files)
    assert assert_problem(french, 422)["detail"] == (
        "fichier 1 refusé : les fichiers PDF contenant du JavaScript sont refusés"
    )
    api.client.headers["Accept-Language"] = "en"
    english = api.write(patient, opened["id"], "Voici le bilan", files=files)
    assert assert_problem(english, 422)["detail"] == (
        "file 1 refused: PDF files with JavaScript are refused"
    )


def test_the_catalogue_names_the_specialties_in_the_language(api: Api) -> None:
    patient = api.patient()
    path = "/api/v1/consultations/catalogue"
    french = api.client.get(path, headers=patient.headers).json()["specialties"]
    english = api.client.get(path, headers={**patient.headers, "Accept-Language": "en"}).json()[
        "specialties"
    ]
    assert french == SPECIALTIES  # the names documents print
    assert english["general-practice"] == "General practice"
    assert set(english) == set(french)
    assert all(english[code] != french[code] for code in french)


def test_a_value_refused_by_our_validator_says_why_in_the_language(api: Api) -> None:
    patient = api.patient()
    body = {
        "specialty": "general-practice",
        "subject": "Plaques rouges",
        "description": "Depuis une semaine.",
        "questionnaire": {**QUESTIONNAIRE, "pregnancy": "maybe"},
    }
    french = api.client.post("/api/v1/consultations", headers=patient.headers, json=body)
    english = api.client.post(
        "/api/v1/consultations", headers={**patient.headers, "Accept-Language": "en"}, json=body
    )
    [fr] = [e["msg"] for e in assert_problem(french, 422)["errors"]]
    [en] = [e["msg"] for e in assert_problem(english, 422)["errors"]]
    assert (
        fr == "la question 'pregnancy' accepte l'une des réponses : yes, no, unsure, not_applicable"
    )
    assert en == "question 'pregnancy' takes one of: yes, no, unsure, not_applicable"
