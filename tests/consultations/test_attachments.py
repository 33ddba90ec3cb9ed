"""Attachments through the API: refusals leave nothing behind (no row, no file), and a
download gives back exactly what was sent, as a download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select

from hippocrate.consultations.models import Attachment, Consultation, Message
from tests.conftest import Store
from tests.consultations.helpers import (
    QUESTIONNAIRE,
    Actor,
    Api,
    TestClient,
    assert_problem,
    blob_files,
    jpeg_bytes,
    pdf_bytes,
    png_bytes,
    running_api,
    stored_as,
)


def counts(api: Api) -> tuple[int, int, int, int]:
    with api.store.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Consultation)) or 0,
            session.scalar(select(func.count()).select_from(Message)) or 0,
            session.scalar(select(func.count()).select_from(Attachment)) or 0,
            len(blob_files(api.blob_dir)),
        )


@pytest.fixture
def opened(sqlite_api: Api) -> tuple[Api, Actor, str]:
    patient = sqlite_api.patient()
    consultation = sqlite_api.open(patient)
    return sqlite_api, patient, consultation["id"]


TRUNCATED_PDF = pdf_bytes("Compte rendu")[:-40]


@pytest.mark.parametrize(
    ("files", "status", "detail"),
    [
        (
            [("bilan.pdf", png_bytes(), "application/pdf")],
            422,
            "file 1 refused: the name says .pdf but the content is a PNG image",
        ),
        (
            [
                ("photo.png", png_bytes(), "image/png"),
                ("bilan.pdf", TRUNCATED_PDF, "application/pdf"),
            ],
            422,
            "file 2 refused: the PDF is truncated or damaged (no %%EOF trailer)",
        ),
        (
            [("radio.jpg", jpeg_bytes(size=(300, 300))[:-200], "image/jpeg")],
            422,
            "file 1 refused: the image is truncated or damaged (JPEG)",
        ),
        (
            [("gros.pdf", pdf_bytes() + b" " * (256 * 1024), "application/pdf")],
            413,
            "a file is larger than the limit of 262144 bytes",
        ),
        (
            [(f"photo{i}.png", png_bytes(), "image/png") for i in range(4)],
            422,
            "at most 3 files may be attached to one message",
        ),
        (
            [("notes.txt", b"some text", "text/plain")],
            422,
            "file 1 refused: only PDF, JPEG and PNG files are accepted",
        ),
    ],
)
def test_refused_files_leave_nothing_behind(
    opened: tuple[Api, Actor, str], files: list[Any], status: int, detail: str
) -> None:
    api, patient, consultation_id = opened
    before = counts(api)

    response = api.write(patient, consultation_id, "Voici mes documents", files=files)

    assert assert_problem(response, status)["detail"] == detail
    assert counts(api) == before
    # No temporary file either: the upload is read in memory.
    assert blob_files(api.blob_dir) == []


def test_a_refused_file_when_opening_leaves_no_consultation(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    body = {
        "specialty": "dermatology",
        "subject": "Grain de beauté",
        "description": "Il a changé de couleur.",
        "questionnaire": QUESTIONNAIRE,
    }
    response = sqlite_api.client.post(
        "/api/v1/consultations",
        headers=patient.headers,
        data={"consultation": json.dumps(body)},
        files=[
            ("files", ("photo.jpg", jpeg_bytes(), "image/jpeg")),
            ("files", ("photo.pdf", png_bytes(), "application/pdf")),
        ],
    )

    assert_problem(response, 422)
    assert counts(sqlite_api) == (0, 0, 0, 0)


def test_a_failure_after_the_files_are_written_removes_them(
    opened: tuple[Api, Actor, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blobs are written before the commit; a transaction that fails afterwards
    takes them away again."""
    api, patient, consultation_id = opened
    from hippocrate.consultations import service

    real_put = service.put_in_transaction
    calls = []

    def put_then_fail(**kwargs: Any) -> None:
        real_put(**kwargs)
        calls.append(kwargs["blob_id"])
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(service, "put_in_transaction", put_then_fail)
    quiet = TestClient(api.client.app, raise_server_exceptions=False)
    response = quiet.post(
        f"/api/v1/consultations/{consultation_id}/messages",
        headers=patient.headers,
        data={"body": "Deux photos"},
        files=[
            ("files", ("a.png", png_bytes(), "image/png")),
            ("files", ("b.png", png_bytes(), "image/png")),
        ],
    )

    assert response.status_code == 500
    assert len(calls) == 2
    assert counts(api) == (1, 0, 0, 0)


def test_upload_accepted_and_downloaded_unchanged(opened: tuple[Api, Actor, str]) -> None:
    api, patient, consultation_id = opened
    photo, report = jpeg_bytes(), pdf_bytes("Analyse")
    name = "résultat d'analyse; final.pdf"

    response = api.write(
        patient,
        consultation_id,
        "",
        files=[("photo.jpeg", photo, "image/jpg"), (name, report, "application/octet-stream")],
    )

    assert response.status_code == 201, response.text
    attachments = response.json()["attachments"]
    assert [(a["filename"], a["media_type"], a["size"]) for a in attachments] == [
        ("photo.jpeg", "image/jpeg", len(stored_as("photo.jpeg", photo))),  # re-encoded
        (name, "application/pdf", len(report)),
    ]
    download = api.client.get(
        f"/api/v1/attachments/{attachments[1]['id']}", headers=patient.headers
    )
    assert download.status_code == 200
    assert download.content == report
    assert download.headers["content-type"] == "application/pdf"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="r_sultat d\'analyse_ final.pdf"; ')
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name
    assert "sandbox" in download.headers["content-security-policy"]
    assert download.headers["x-content-type-options"] == "nosniff"
    # Stored sealed, one file per attachment, named by its id only.
    stored = blob_files(api.blob_dir)
    assert sorted(p.name for p in stored) == sorted(a["id"] for a in attachments)
    assert all(photo not in p.read_bytes() and report not in p.read_bytes() for p in stored)


@pytest.mark.parametrize(
    ("headers", "content", "detail"),
    [
        (
            {"Content-Type": "text/plain"},
            b"hello",
            "send application/json, or multipart/form-data to attach files",
        ),
        (
            {"Content-Type": "multipart/form-data"},
            b"--x\r\n",
            "a multipart/form-data body needs a boundary",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b'--x\r\nContent-Disposition: form-data; name="bodyx"\r\n\r\nhi\r\n--x--\r\n',
            "unexpected field 'bodyx'; the fields are: body, files",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi\r\n--x\r\n'
            b'Content-Disposition: form-data; name="body"\r\n\r\nho\r\n--x--\r\n',
            "the field 'body' is sent twice",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi',
            "the multipart body is incomplete",
        ),
        (
            {"Content-Type": "multipart/form-data; boundary=x"},
            b'--x\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n\r\n'
            b"data\r\n--x--\r\n",
            "files are sent in the 'files' field",
        ),
    ],
)
def test_malformed_bodies_are_clear_422s(
    opened: tuple[Api, Actor, str], headers: dict[str, str], content: bytes, detail: str
) -> None:
    api, patient, consultation_id = opened

    response = api.client.post(
        f"/api/v1/consultations/{consultation_id}/messages",
        headers={**patient.headers, **headers},
        content=content,
    )

    assert assert_problem(response, 422)["detail"] == detail
    assert counts(api)[1:] == (0, 0, 0)


def test_a_message_needs_text_or_a_file(opened: tuple[Api, Actor, str]) -> None:
    api, patient, consultation_id = opened

    response = api.write(patient, consultation_id, "   ")

    assert assert_problem(response, 422)["detail"] == "a message needs text or at least one file"


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    opened: tuple[Api, Actor, str],
) -> None:
    api, patient, consultation_id = opened

    response = api.client.post(
        f"/api/v1/consultations/{consultation_id}/messages",
        headers={
            **patient.headers,
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(10**9),
        },
        content=b"--x--\r\n",
    )

    assert_problem(response, 413)


@pytest.fixture
def tight_api(sqlite_store: Store, tmp_path: Path) -> Iterator[Api]:
    with running_api(sqlite_store, tmp_path, attachment_max_bytes=2048) as running:
        yield running


def test_the_size_limit_is_the_configured_one(tight_api: Api) -> None:
    patient = tight_api.patient()
    consultation_id = tight_api.open(patient)["id"]
    small = png_bytes(size=(8, 8))
    assert len(small) < 2048

    assert (
        tight_api.write(patient, consultation_id, "ok", [("a.png", small, "image/png")]).status_code
        == 201
    )
    too_big = tight_api.write(
        patient, consultation_id, "trop", [("b.pdf", pdf_bytes() + b" " * 2048, "application/pdf")]
    )
    assert assert_problem(too_big, 413)["detail"] == "a file is larger than the limit of 2048 bytes"
