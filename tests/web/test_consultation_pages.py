"""The consultation pages, patient and practitioner, driven as a browser drives them:
opening with attachments, the queue (waiting times only), taking, answering, unread
marks, closing with a report and a prescription, the signed PDF downloaded and checked
on /documents/verify; and the attacks: another patient's id, a practitioner not in
care or of another specialty, a patient on staff pages, forms without CSRF."""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import func, select

from hippocrate.audit.models import AuditEvent
from hippocrate.consultations.models import Message
from hippocrate.identity.models import Role
from hippocrate.web import csrf
from tests.conftest import Store
from tests.consultations.helpers import pdf_bytes, png_bytes
from tests.identity.conftest import Env
from tests.identity.helpers import TestUser, patient_data
from tests.web.conftest import page_client, running_pages, sign_in, submit, token_of

SUBJECT = "Plaques rouges sur l'avant-bras"
DESCRIPTION = "Depuis cinq jours, des plaques qui grattent le soir."
ANSWERS = {
    "q_symptoms_duration": "4_to_7_days",
    "q_current_treatments": "aucun",
    "q_allergies": "aucune",
    "q_pregnancy": "not_applicable",
}
FAMILY_NAME = "Marchetti"
REPORT = "Eczema de contact probable."
PRESCRIPTION = "Dermocorticoide classe II, une application le soir, 7 jours"

_ID = re.compile(r"/patient/consultations/([0-9a-f-]{36})")
_LINK = re.compile(
    r'href="(/(?:patient|practitioner)/consultations/[0-9a-f-]{36}/attachments/[0-9a-f-]{36})"'
)


@contextmanager
def browser(env: Env, user: TestUser) -> Iterator[TestClient]:
    """A second browser on the same app, signed in as ``user``, in English."""
    with page_client(env.app) as client:
        client.headers["Accept-Language"] = "en"
        sign_in(client, user)
        yield client


def patient_of(env: Env) -> TestUser:
    born = date(1988, 3, 14)
    return env.user(patient=patient_data(family_name=FAMILY_NAME, birth_date=born))


def open_one(client: TestClient, files: Any = None, **changes: str) -> httpx.Response:
    data = {"specialty": "general-practice", "subject": SUBJECT, "description": DESCRIPTION}
    data |= ANSWERS | changes
    return submit(client, "/patient/consultations/new", data, files=files)


def opened(client: TestClient, files: Any = None) -> str:
    answer = open_one(client, files=files)
    assert answer.status_code == 303, answer.text[:800]
    found = _ID.match(answer.headers["location"])
    assert found is not None, answer.headers["location"]
    return found.group(1)


def two_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("files", ("bilan.pdf", pdf_bytes(), "application/pdf")),
        ("files", ("photo.png", png_bytes(), "image/png")),
    ]


def messages_in(env: Env, consultation_id: str) -> int:
    with env.store.sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.consultation_id == uuid.UUID(consultation_id))
        )
    return int(count or 0)


def reads_by(env: Env, account_id: uuid.UUID, request_id: str) -> set[str]:
    with env.store.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(
                AuditEvent.actor_account_id == account_id, AuditEvent.request_id == request_id
            )
        ).all()
    return {e.action for e in events}


def taken(doctor: TestClient) -> str:
    answer = submit(doctor, "/practitioner/queue/take", {}, form="/practitioner")
    assert answer.status_code == 303, answer.text[:800]
    location = answer.headers["location"]
    assert location.startswith("/practitioner/consultations/")
    return location.split("/")[3].split("?")[0]


def test_a_consultation_from_the_form_to_the_signed_prescription(web_on: Env) -> None:
    web = web_on
    web.client.headers["Accept-Language"] = "en"
    patient = patient_of(web)
    sign_in(web.client, patient)

    form = web.client.get("/patient/consultations/new")
    assert form.status_code == 200
    assert "How long have you had these symptoms?" in form.text  # the catalogue's labels
    assert 'type="file" multiple' in form.text
    assert 'enctype="multipart/form-data"' in form.text

    consultation_id = opened(web.client, files=two_files())
    page = web.client.get(f"/patient/consultations/{consultation_id}")
    assert page.status_code == 200
    assert SUBJECT.replace("'", "&#39;") in page.text
    assert "bilan.pdf" in page.text
    assert "photo.png" in page.text
    assert len(set(_LINK.findall(page.text))) == 2
    # The page read the record as the API's GET does: in the trail, for the patient.
    assert "consultation:record:read" in reads_by(
        web, patient.account_id, page.headers["X-Request-ID"]
    )
    home = web.client.get("/patient")
    assert home.status_code == 200
    assert f'href="/patient/consultations/{consultation_id}"' in home.text

    doctor_user = web.user(Role.PRACTITIONER)
    with browser(web, doctor_user) as doctor:
        queue = doctor.get("/practitioner")
        assert queue.status_code == 200
        assert 'action="/practitioner/queue/take"' in queue.text
        assert re.search(r'action="/practitioner/queue/[^"/]+/take"', queue.text)
        for secret in ("Plaques", "avant-bras", "grattent", FAMILY_NAME, "bilan.pdf"):
            assert secret not in queue.text, secret

        assert taken(doctor) == consultation_id
        record = doctor.get(f"/practitioner/consultations/{consultation_id}")
        assert record.status_code == 200
        assert FAMILY_NAME in record.text
        assert "years" in record.text  # the age, not the birth date
        assert "1988" not in record.text
        assert "How long have you had these symptoms?" in record.text
        assert "4 to 7 days" in record.text
        assert "consultation:record:read" in reads_by(
            web, doctor_user.account_id, record.headers["X-Request-ID"]
        )
        answer = submit(
            doctor,
            f"/practitioner/consultations/{consultation_id}/messages",
            {"body": "Pouvez-vous envoyer une photo de plus près ?"},
            form=f"/practitioner/consultations/{consultation_id}",
            files=[("files", ("zoom.png", png_bytes(), "image/png"))],
        )
        assert answer.status_code == 303, answer.text[:800]

        # The patient: an unread mark in the list and on the message, gone once read.
        home = web.client.get("/patient")
        assert 'class="badge unread"' in home.text
        thread = web.client.get(f"/patient/consultations/{consultation_id}")
        assert "Pouvez-vous envoyer" in thread.text
        assert 'class="badge unread"' in thread.text
        again = web.client.get(f"/patient/consultations/{consultation_id}")
        assert 'class="badge unread"' not in again.text
        assert 'class="badge unread"' not in web.client.get("/patient").text

        closed = submit(
            doctor,
            f"/practitioner/consultations/{consultation_id}/close",
            {"report": REPORT, "prescription": PRESCRIPTION, "acts": "TCG"},
            form=f"/practitioner/consultations/{consultation_id}",
        )
        assert closed.status_code == 303, closed.text[:800]
        assert "Signed prescription" in doctor.get(closed.headers["location"]).text

    final = web.client.get(f"/patient/consultations/{consultation_id}")
    assert REPORT in final.text
    links = re.findall(r'href="([^"]+)" download>Signed prescription', final.text)
    assert len(links) == 1
    pdf = web.client.get(links[0])
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    assert pdf.content.startswith(b"%PDF-")

    verified = submit(
        web.client,
        "/documents/verify/file",
        {},
        form="/documents/verify",
        files=[("files", ("ordonnance.pdf", pdf.content, "application/pdf"))],
    )
    assert verified.status_code == 200, verified.text[:800]
    assert "Issued by Hippocrate" in verified.text
    assert "unchanged" in verified.text
    forged = submit(
        web.client,
        "/documents/verify/file",
        {},
        form="/documents/verify",
        files=[("files", ("x.pdf", pdf.content.replace(b"%%EOF", b"%%EOF\n% "), "x"))],
    )
    assert forged.status_code == 200
    assert "Issued by Hippocrate" not in forged.text
    by_code = submit(
        web.client,
        "/documents/verify/code",
        {"code": code_of(pdf.content)},
        form="/documents/verify",
    )
    assert "Issued by Hippocrate" in by_code.text
    unknown = submit(
        web.client, "/documents/verify/code", {"code": "0000-0000-0000"}, form="/documents/verify"
    )
    assert "Hippocrate issued no document with this code" in unknown.text


def code_of(pdf: bytes) -> str:
    """The verification code printed on ``pdf``."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    found = re.search(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})", text)
    assert found is not None, text
    return found.group(1)


def test_refused_forms_show_the_form_again_with_the_refusal(web: Env) -> None:
    web.client.headers["Accept-Language"] = "en"
    sign_in(web.client, web.user())
    short = open_one(web.client, subject="", files=two_files())
    assert short.status_code == 422
    assert 'role="alert"' in short.text
    assert re.search(r'id="subject"[^>]*aria-invalid="true"', short.text)
    assert "choose them again" in short.text
    assert DESCRIPTION in short.text  # what was written is shown back
    too_many = [("files", (f"p{i}.png", png_bytes(), "image/png")) for i in range(6)]
    many = open_one(web.client, files=too_many)
    assert many.status_code == 422
    assert 'role="alert"' in many.text
    assert "at most 5 files" in many.text
    wrong = open_one(web.client, files=[("files", ("notes.txt", b"hello", "text/plain"))])
    assert wrong.status_code == 422
    assert "only PDF, JPEG and PNG" in wrong.text
    assert "You have no open consultation." in web.client.get("/patient").text  # none stored


def test_other_people_get_nothing(web: Env) -> None:
    web.client.headers["Accept-Language"] = "en"
    owner = web.user()
    sign_in(web.client, owner)
    consultation_id = opened(web.client, files=two_files())
    path = f"/patient/consultations/{consultation_id}"
    attachment = _LINK.findall(web.client.get(path).text)[0]

    # The owner's own attachment under their own other consultation's path: not found,
    # and nothing of it is opened or recorded as read.
    second = opened(web.client)
    crossed_own = web.client.get(attachment.replace(consultation_id, second))
    assert crossed_own.status_code == 404
    assert "consultation:attachment:read" not in reads_by(
        web, owner.account_id, crossed_own.headers["x-request-id"]
    )

    with browser(web, web.user()) as stranger:
        assert stranger.get(path).status_code == 404
        assert "text/html" in stranger.get(path).headers["content-type"]
        assert stranger.get(attachment).status_code == 404
        mine = opened(stranger)
        # Their own consultation's path with the owner's attachment id: not found.
        crossed = attachment.replace(consultation_id, mine)
        assert stranger.get(crossed).status_code == 404
        # A patient on the practitioner's pages: forbidden.
        assert stranger.get("/practitioner").status_code == 403
        assert stranger.get(f"/practitioner/consultations/{consultation_id}").status_code == 403
        token = token_of(stranger, "/patient")
        close = stranger.post(
            f"/practitioner/consultations/{consultation_id}/close",
            data={csrf.FIELD: token, "report": "x", "acts": "TCG"},
        )
        assert close.status_code == 403

    other_specialty = web.user(Role.PRACTITIONER, specialty="dermatology")
    with browser(web, other_specialty) as dermatologist:
        assert (
            dermatologist.get(f"/practitioner/consultations/{consultation_id}").status_code == 404
        )
        assert "0 consultations waiting" in dermatologist.get("/practitioner").text
    with browser(web, web.user(Role.PRACTITIONER)) as not_in_care:
        assert not_in_care.get(f"/practitioner/consultations/{consultation_id}").status_code == 404
        assert not_in_care.get("/patient").status_code == 403

    with page_client(web.app) as nobody:
        answer = nobody.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/sign-in?next=")


def test_forms_without_their_csrf_token_change_nothing(web: Env) -> None:
    web.client.headers["Accept-Language"] = "en"
    sign_in(web.client, web.user())
    consultation_id = opened(web.client)
    path = f"/patient/consultations/{consultation_id}"
    before = messages_in(web, consultation_id)
    # URL-encoded: a multipart body refused by the CSRF check is left unclosed by it
    # (a ResourceWarning of the kit's, reported), which this test would fail on.
    missing = web.client.post(f"{path}/messages", data={"body": "sent from elsewhere"})
    assert missing.status_code == 403
    wrong = web.client.post(f"{path}/messages", data={csrf.FIELD: "x" * 43, "body": "again"})
    assert wrong.status_code == 403
    assert messages_in(web, consultation_id) == before
    assert web.client.post(f"{path}/cancel").status_code == 403
    assert "Cancel this consultation" in web.client.get(path).text  # still open
    assert web.client.post("/patient/consultations/new", data=ANSWERS).status_code == 403
    sent = submit(web.client, f"{path}/messages", {"body": "Merci"}, form=path)
    assert sent.status_code == 303
    assert messages_in(web, consultation_id) == before + 1
    cancelled = submit(web.client, f"{path}/cancel", {}, form=path)
    assert cancelled.status_code == 303
    assert "Cancel this consultation" not in web.client.get(path).text


def test_images_are_shown_sandboxed_and_everything_else_downloaded(web: Env) -> None:
    sign_in(web.client, web.user())
    consultation_id = opened(web.client, files=two_files())
    path = f"/patient/consultations/{consultation_id}"
    page = web.client.get(path)
    links = sorted(set(_LINK.findall(page.text)))
    assert len(links) == 2
    assert f'src="{links[0]}/view"' in page.text or f'src="{links[1]}/view"' in page.text
    for link in links:
        download = web.client.get(link)
        assert download.status_code == 200
        assert download.headers["content-disposition"].startswith("attachment;")
        assert download.headers["x-content-type-options"] == "nosniff"
        view = web.client.get(f"{link}/view")
        if download.headers["content-type"] == "image/png":
            assert view.status_code == 200
            assert view.headers["content-disposition"] == "inline"
            assert view.headers["content-security-policy"] == (
                "default-src 'none'; frame-ancestors 'none'; sandbox"
            )
            assert view.headers["x-content-type-options"] == "nosniff"
        else:
            assert view.status_code == 404  # a PDF is never rendered by the page


def test_the_practitioner_hands_back_and_lists_their_patients(web: Env) -> None:
    web.client.headers["Accept-Language"] = "en"
    sign_in(web.client, patient_of(web))
    consultation_id = opened(web.client)
    with browser(web, web.user(Role.PRACTITIONER)) as doctor:
        entry = re.search(
            r'action="(/practitioner/queue/[^"/]+/take)"', doctor.get("/practitioner").text
        )
        assert entry is not None
        took = submit(doctor, entry.group(1), {}, form="/practitioner")
        assert took.status_code == 303
        assert consultation_id in took.headers["location"]
        patients = doctor.get("/practitioner/patients")
        assert patients.status_code == 200
        assert f"/practitioner/consultations/{consultation_id}" in patients.text
        assert "Plaques" not in patients.text
        assert FAMILY_NAME not in patients.text
        home = doctor.get("/practitioner")
        assert f"/practitioner/consultations/{consultation_id}" in home.text
        record = f"/practitioner/consultations/{consultation_id}"
        refused = submit(doctor, f"{record}/hand-back", {"reason": "x"}, form=record)
        assert refused.status_code == 422
        assert 'role="alert"' in refused.text
        assert 'aria-invalid="true"' in refused.text
        no_acts = submit(doctor, f"{record}/close", {"report": REPORT, "acts": ""}, form=record)
        assert no_acts.status_code == 422
        assert REPORT in no_acts.text
        back = submit(doctor, f"{record}/hand-back", {"reason": "Hors de ma pratique"}, form=record)
        assert back.status_code == 303
        assert doctor.get(record).status_code == 404  # no longer in care
        assert "One consultation waiting." in doctor.get("/practitioner").text


def test_the_document_check_page_is_public_throttled_and_needs_its_csrf_token(
    sqlite_store: Store, tmp_path: Path
) -> None:
    for env in running_pages(sqlite_store, tmp_path, document_checks_per_client=2):
        env.client.headers["Accept-Language"] = "en"
        page = env.client.get("/documents/verify")
        assert page.status_code == 200
        assert 'action="/documents/verify/code"' in page.text
        assert 'action="/documents/verify/file"' in page.text
        assert env.client.post("/documents/verify/code", data={"code": "x"}).status_code == 403
        malformed = submit(env.client, "/documents/verify/code", {"code": "not a code"})
        assert malformed.status_code == 200
        assert "this is not a Hippocrate verification code" in malformed.text
        assert "not a code" in malformed.text  # shown back, escaped by the template
        no_file = submit(env.client, "/documents/verify/file", {}, form="/documents/verify")
        assert no_file.status_code == 422
        assert 'role="alert"' in no_file.text
        refused = submit(
            env.client,
            "/documents/verify/code",
            {"code": "0000-0000-0000"},
            form="/documents/verify",
        )
        assert refused.status_code == 429
        assert "retry-after" in refused.headers
        assert 'role="alert"' in refused.text


def test_a_form_sent_with_the_csrf_header_goes_through_the_apis_upload_reader(web: Env) -> None:
    """htmx sends the token in the header: the body is then read by the API's streaming
    reader, with the same limits and refusals."""
    web.client.headers["Accept-Language"] = "en"
    sign_in(web.client, web.user())
    consultation_id = opened(web.client)
    path = f"/patient/consultations/{consultation_id}"
    header = {"X-CSRF-Token": token_of(web.client, path)}
    before = messages_in(web, consultation_id)
    sent = web.client.post(
        f"{path}/messages",
        data={"body": "Voici la photo"},
        files=[("files", ("zoom.png", png_bytes(), "image/png"))],
        headers=header,
    )
    assert sent.status_code == 303, sent.text[:800]
    assert messages_in(web, consultation_id) == before + 1
    too_many = [("files", (f"p{i}.png", png_bytes(), "image/png")) for i in range(6)]
    refused = web.client.post(
        f"{path}/messages", data={"body": "encore"}, files=too_many, headers=header
    )
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text
    assert "at most 5 files" in refused.text
    assert messages_in(web, consultation_id) == before + 1
    bad = web.client.post(
        f"{path}/messages",
        data={"body": "encore"},
        files=[("files", ("scan.pdf", b"%PDF-1.4 not really", "application/pdf"))],
        headers=header,
    )
    assert bad.status_code == 422
    assert "encore" in bad.text  # the text written is shown back
    assert "choose them again" in bad.text


def test_a_photo_of_a_few_megabytes_is_accepted_by_the_form(web: Env) -> None:
    # The body limit knows the pages' forms with files, beside the API's upload routes.
    sign_in(web.client, web.user())
    noise = Image.frombytes("RGB", (900, 800), os.urandom(900 * 800 * 3))
    photo = io.BytesIO()
    noise.save(photo, "PNG")
    assert photo.tell() > 2 * 1024 * 1024  # as large as a phone's photo
    answer = open_one(web.client, files=[("files", ("bras.png", photo.getvalue(), "image/png"))])
    assert answer.status_code == 303, answer.text[:800]


def test_a_file_over_the_attachment_limit_shows_the_form_again(
    sqlite_store: Store, tmp_path: Path
) -> None:
    for env in running_pages(sqlite_store, tmp_path, attachment_max_bytes=4096):
        env.client.headers["Accept-Language"] = "en"
        sign_in(env.client, env.user())
        large = [("files", ("scan.png", png_bytes() + b"\0" * 8192, "image/png"))]
        answer = open_one(env.client, files=large)
        assert answer.status_code == 413
        assert 'role="alert"' in answer.text
        assert "larger than the limit of 4096 bytes" in answer.text
        assert "choose them again" in answer.text
        # The reader stops at the oversized file, before the form is whole: what was
        # typed is not shown back (the file's limit is said next to the field).


def test_a_refused_take_shows_the_queue_again(web: Env) -> None:
    web.client.headers["Accept-Language"] = "en"
    sign_in(web.client, web.user())
    opened(web.client)
    with browser(web, web.user(Role.PRACTITIONER, specialty="dermatology")) as empty:
        refused = submit(empty, "/practitioner/queue/take", {}, form="/practitioner")
        assert refused.status_code == 409
        assert 'role="alert"' in refused.text
        assert "No consultation is waiting." in refused.text
    with (
        browser(web, web.user(Role.PRACTITIONER)) as first,
        browser(web, web.user(Role.PRACTITIONER)) as second,
    ):
        queue = second.get("/practitioner").text
        entry = re.search(r'action="(/practitioner/queue/[^"/]+/take)"', queue)
        assert entry is not None
        taken(first)
        late = second.post(entry.group(1), data={csrf.FIELD: token_of(second, "/practitioner")})
        assert late.status_code == 409
        assert 'role="alert"' in late.text
        assert "list the queue again" in late.text
