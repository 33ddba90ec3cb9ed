"""The demo's generated files are genuine: they pass the same checks as an upload, the
same arguments give the same bytes, and a damaged copy is refused."""

from __future__ import annotations

import pytest

from hippocrate.consultations.errors import AttachmentRejected
from hippocrate.consultations.files import check_file
from hippocrate.demo.files import jpeg_bytes, pdf_bytes, pdf_document, png_bytes, skin_photo

MAX = 1024 * 1024
TEXT = "Ordonnance (renouvellement) : 1 comprimé, œdème, 100 µg \\ fin"


@pytest.mark.parametrize(
    ("name", "content", "media_type"),
    [
        ("plain.png", png_bytes("marker"), "image/png"),
        ("plain.jpg", jpeg_bytes(marker="marker"), "image/jpeg"),
        ("photo.png", skin_photo(seed=1), "image/png"),
        ("photo.jpeg", skin_photo(seed=2, kind="JPEG"), "image/jpeg"),
        ("short.pdf", pdf_bytes("Compte rendu"), "application/pdf"),
        ("page.pdf", pdf_document("Résultat", [TEXT, "", "Fin"]), "application/pdf"),
    ],
)
def test_generated_files_pass_the_upload_checks(name: str, content: bytes, media_type: str) -> None:
    checked = check_file(
        position=1, filename=name, declared_type=media_type, content=content, max_bytes=MAX
    )

    assert checked.media_type == media_type
    assert len(content) < 64 * 1024


def test_same_arguments_same_bytes_and_text_in_the_clear() -> None:
    assert skin_photo(seed=5) == skin_photo(seed=5)
    assert skin_photo(seed=5) != skin_photo(seed=6)
    document = pdf_document("Résultat", [TEXT])
    assert document == pdf_document("Résultat", [TEXT])
    # WinAnsi bytes, parentheses and backslash escaped: the string stays well formed.
    assert "Résultat".encode("cp1252") in document
    assert b"Ordonnance \\(renouvellement\\)" in document
    assert b"\\\\ fin" in document


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("cut.pdf", pdf_document("Résultat", [TEXT])[:-40]),
        ("cut.png", skin_photo(seed=3)[:-30]),
        ("cut.jpg", skin_photo(seed=4, kind="JPEG")[:-200]),
    ],
)
def test_a_damaged_copy_is_refused(name: str, content: bytes) -> None:
    with pytest.raises(AttachmentRejected):
        check_file(position=1, filename=name, declared_type=None, content=content, max_bytes=MAX)
