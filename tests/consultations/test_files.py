"""The content checks of attached files, on bytes: what is refused and why."""

from __future__ import annotations

import struct
import zlib

import pytest

from hippocrate.consultations.errors import AttachmentRejected, AttachmentTooLarge
from hippocrate.consultations.files import check_file, clean_filename, sniff
from tests.consultations.helpers import jpeg_bytes, pdf_bytes, png_bytes

LIMIT = 1024 * 1024


def check(name: str | None, content: bytes, declared: str | None = None) -> str:
    return check_file(
        position=1, filename=name, declared_type=declared, content=content, max_bytes=LIMIT
    ).media_type


def refused(name: str | None, content: bytes, declared: str | None = None) -> str:
    with pytest.raises(AttachmentRejected) as caught:
        check(name, content, declared)
    assert str(caught.value).startswith("file 1 refused: ")
    return caught.value.reason


@pytest.mark.parametrize(
    ("name", "content", "declared", "expected"),
    [
        ("bilan.pdf", pdf_bytes(), "application/pdf", "application/pdf"),
        ("bilan.PDF", pdf_bytes(), None, "application/pdf"),
        ("photo.png", png_bytes(), "image/png", "image/png"),
        ("photo.jpg", jpeg_bytes(), "image/jpeg", "image/jpeg"),
        ("photo.jpeg", jpeg_bytes(), "image/jpg", "image/jpeg"),
        ("photo.jpeg", jpeg_bytes(), "application/octet-stream", "image/jpeg"),
    ],
)
def test_genuine_files_pass(name: str, content: bytes, declared: str | None, expected: str) -> None:
    assert check(name, content, declared) == expected


def test_a_pdf_that_is_really_a_png_is_refused() -> None:
    assert refused("bilan.pdf", png_bytes(), "application/pdf") == (
        "the name says .pdf but the content is a PNG image"
    )


def test_a_declared_type_that_contradicts_the_content_is_refused() -> None:
    assert refused("photo.png", png_bytes(), "image/jpeg") == (
        "declared as image/jpeg but the content is a PNG image"
    )
    assert refused("photo.jpg", jpeg_bytes(), "application/pdf") == (
        "declared as application/pdf but the content is a JPEG image"
    )


@pytest.mark.parametrize(
    "content",
    [
        b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
        b"PK\x03\x04 a zip file",
        b"MZ\x90\x00 an executable",
        b"<html><script>alert(1)</script></html>",
        b"just text",
    ],
)
def test_other_kinds_of_files_are_refused(content: bytes) -> None:
    assert refused("document.pdf", content) == "only PDF, JPEG and PNG files are accepted"


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9, 0.99])
def test_a_truncated_pdf_is_refused(cut: float) -> None:
    whole = pdf_bytes("Compte rendu d'imagerie")
    reason = refused("bilan.pdf", whole[: int(len(whole) * cut)])
    assert reason.startswith("the PDF is truncated or damaged")


def test_a_pdf_whose_cross_reference_points_nowhere_is_refused() -> None:
    whole = pdf_bytes()
    offset = whole.rindex(b"startxref\n") + len(b"startxref\n")
    end = whole.index(b"\n", offset)
    forged = whole[:offset] + b"12" + whole[end:]
    assert refused("bilan.pdf", forged) == (
        "the PDF is truncated or damaged (its cross-reference is missing)"
    )


def test_a_pdf_header_glued_on_another_file_is_refused() -> None:
    assert refused("bilan.pdf", b"%PDF-1.7\n" + png_bytes()).startswith(
        "the PDF is truncated or damaged"
    )


def test_a_pdf_with_javascript_is_refused() -> None:
    scripted = pdf_bytes().replace(
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>",
    )
    # Keep the cross-reference right: rebuild offsets is overkill; shift the xref offset.
    delta = len(scripted) - len(pdf_bytes())
    head, _, tail = scripted.rpartition(b"startxref\n")
    old = int(tail.split(b"\n", 1)[0])
    scripted = head + b"startxref\n" + str(old + delta).encode() + b"\n%%EOF\n"
    assert refused("bilan.pdf", scripted) == "PDF files with JavaScript are refused"


@pytest.mark.parametrize("cut", [0.5, 0.8, 0.95])
def test_a_truncated_png_is_refused(cut: float) -> None:
    whole = png_bytes(size=(64, 64))
    assert refused("photo.png", whole[: int(len(whole) * cut)]) == (
        "the image is truncated or damaged (PNG)"
    )


@pytest.mark.parametrize("cut", [0.5, 0.8, 0.95])
def test_a_truncated_jpeg_is_refused(cut: float) -> None:
    whole = jpeg_bytes(size=(256, 256))
    assert refused("photo.jpg", whole[: int(len(whole) * cut)]) == (
        "the image is truncated or damaged (JPEG)"
    )


def test_a_png_with_a_corrupted_chunk_is_refused() -> None:
    whole = bytearray(png_bytes(size=(64, 64)))
    whole[40] ^= 0xFF  # inside the first chunk after IHDR: its CRC no longer matches
    assert refused("photo.png", bytes(whole)) == "the image is truncated or damaged (PNG)"


def _png_announcing(width: int, height: int) -> bytes:
    """A PNG header announcing ``width`` x ``height`` pixels, with almost no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [9_000, 20_000])
def test_an_image_with_too_many_pixels_is_refused_before_decoding(side: int) -> None:
    assert refused("photo.png", _png_announcing(side, side)) == (
        "the image is larger than 64 megapixels"
    )


def test_empty_and_oversized_files_are_refused() -> None:
    assert refused("photo.png", b"") == "the file is empty"
    with pytest.raises(AttachmentTooLarge, match=f"limit of {LIMIT} bytes"):
        check("bilan.pdf", pdf_bytes() + b"\n" * LIMIT)


def test_a_file_needs_a_name() -> None:
    assert refused(None, png_bytes()) == "the file needs a name (e.g. report.pdf)"
    assert refused("", png_bytes()) == "the file needs a name (e.g. report.pdf)"
    assert (
        refused("photo", png_bytes()) == "the name says no extension but the content is a PNG image"
    )


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("bilan.pdf", "bilan.pdf"),
        ("../../etc/bilan.pdf", "bilan.pdf"),
        ("C:\\Users\\moi\\bilan.pdf", "bilan.pdf"),
        ("  .hidden.pdf ", "hidden.pdf"),
        ("photo\u202egnp.exe", "photognp.exe"),  # right-to-left override removed
        ("résultat\x00\x1f.pdf", "résultat.pdf"),
        ("e\u0301te\u0301.pdf", "été.pdf"),  # NFC
        ("...", None),
        ("x" * 201 + ".pdf", None),
    ],
)
def test_file_names_are_reduced_to_a_safe_base_name(raw: str, clean: str | None) -> None:
    assert clean_filename(raw) == clean


def test_sniffing_reads_the_magic_bytes_only() -> None:
    assert sniff(pdf_bytes()) == "application/pdf"
    assert sniff(png_bytes()) == "image/png"
    assert sniff(jpeg_bytes()) == "image/jpeg"
    assert sniff(b" %PDF-1.4") is None
