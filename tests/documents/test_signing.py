"""The documents Hippocrate issues are PDFs signed by the deployment's key: a signed
document verifies; a flipped byte, bytes appended after signing, another deployment's
signature, an unsigned or a broken file do not."""

from __future__ import annotations

import io
import os
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pikepdf
import pytest
from pypdf import PdfReader

from hippocrate.documents.render import (
    Issued,
    Person,
    Prescriber,
    font_path,
    prescription_pdf,
    report_pdf,
)
from hippocrate.documents.signing import UNSIGNED, sign_pdf, verify_pdf
from hippocrate.vault import KeyProviderError
from hippocrate.vault.documents import create_document_signing_key, load_document_signing_key

PRESCRIBER = Prescriber("Inès", "Caron", "Dermatologie", "10003456789")
PATIENT = Person("Lucie", "Martin", date(1985, 6, 14))
ISSUED = Issued("K7PX-3QHM-2WZD", datetime(2026, 12, 1, 9, 30, tzinfo=UTC), "https://h.fr/v")
ITEMS = ["Desloratadine 5 mg : un comprimé le soir, 15 jours", "Émollient ≥ 2 fois/jour, cœur"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("document-keys")
    ours, theirs = folder / "ours.key", folder / "theirs.key"
    create_document_signing_key(ours)
    create_document_signing_key(theirs)
    return ours, theirs


def _prescription() -> bytes:
    return prescription_pdf(
        font=font_path(None), prescriber=PRESCRIBER, patient=PATIENT, items=ITEMS, issued=ISSUED
    )


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def test_a_signed_document_verifies_and_a_flipped_byte_does_not(keys: tuple[Path, Path]) -> None:
    key = load_document_signing_key(keys[0])
    signed = sign_pdf(_prescription(), key)

    assert verify_pdf(signed, key).valid

    # Flip one byte inside the signed content (not inside the signature itself).
    position = signed.index(b"stream") + 20
    flipped = bytearray(signed)
    flipped[position] ^= 0x01
    verdict = verify_pdf(bytes(flipped), key)
    assert verdict.signed
    assert not verdict.valid
    assert not verdict.intact


def test_another_deployments_signature_is_refused(keys: tuple[Path, Path]) -> None:
    ours, theirs = (load_document_signing_key(path) for path in keys)
    forged = sign_pdf(_prescription(), theirs)

    verdict = verify_pdf(forged, ours)

    assert verdict.intact  # well signed, by someone else
    assert not verdict.ours
    assert not verdict.valid


def test_content_added_after_signing_is_refused(keys: tuple[Path, Path]) -> None:
    key = load_document_signing_key(keys[0])
    signed = sign_pdf(_prescription(), key)
    # An incremental update that adds a page keeps the signature intact over what it
    # signed, but it no longer covers the whole file.
    with pikepdf.open(io.BytesIO(signed)) as pdf:
        pdf.add_blank_page()
        out = io.BytesIO()
        pdf.save(out)
    altered = out.getvalue()
    assert not verify_pdf(altered, key).valid
    appended = signed + b"\n% appended\n"
    assert not verify_pdf(appended, key).valid


def test_unsigned_and_broken_files_are_unsigned(keys: tuple[Path, Path]) -> None:
    key = load_document_signing_key(keys[0])
    assert verify_pdf(_prescription(), key) == UNSIGNED
    assert verify_pdf(b"not a pdf at all", key) == UNSIGNED
    assert verify_pdf(b"", key) == UNSIGNED


def test_the_prescription_carries_what_a_pharmacist_needs() -> None:
    text = _text(_prescription())
    for expected in (
        "Dr Inès Caron",
        "Dermatologie",
        "RPPS : 10003456789",
        "Lucie Martin",
        "14 juin 1985",
        "1 décembre 2026",
        "1. Desloratadine 5 mg",
        "≥",
        "cœur",
        "téléconsultation",
        "K7PX-3QHM-2WZD",
    ):
        assert expected in text, expected


def test_the_report_carries_its_text_and_acts() -> None:
    pdf = report_pdf(
        font=font_path(None),
        prescriber=PRESCRIBER,
        patient=PATIENT,
        report="Eczéma de contact probable.\n\nRevoir dans un mois.",
        acts=["TCG"],
        issued=ISSUED,
    )
    text = _text(pdf)
    assert "Compte rendu de téléconsultation" in text
    assert "Eczéma de contact probable." in text
    assert "Actes : TCG" in text


def test_the_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "documents.key"
    create_document_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(KeyProviderError, match="refusing to overwrite"):
        create_document_signing_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyProviderError, match="readable by others"):
        load_document_signing_key(path)
    os.chmod(path, 0o600)
    assert repr(load_document_signing_key(path)) == "DocumentSigningKey(<redacted>)"
