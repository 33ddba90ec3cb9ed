"""Small, genuine attachment files made in code: PNG and JPEG images (Pillow) and
minimal PDF documents.

Every file passes the checks of ``consultations/files.py`` (magic bytes, structure,
Pillow's ``verify()``, a ``startxref`` that points at the cross-reference table, no
active content in the PDFs), so the demo, the honeytokens and the tests attach files
exactly as a client would. The same arguments give the same bytes. Images are
re-encoded on upload: a marker written in a PNG text chunk or a JPEG comment is not in
what the platform keeps.
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

from PIL import Image, ImageDraw, PngImagePlugin

# -- images ------------------------------------------------------------------------------


def png_bytes(marker: str = "", size: tuple[int, int] = (24, 16)) -> bytes:
    """A plain PNG; ``marker`` goes in a tEXt chunk, in the clear inside the file."""
    image = Image.new("RGB", size, (200, 80, 60))
    info = PngImagePlugin.PngInfo()
    if marker:
        info.add_text("Comment", marker)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def jpeg_bytes(size: tuple[int, int] = (64, 48), marker: str = "") -> bytes:
    """A plain JPEG with a diagonal line (so it does not compress to nothing);
    ``marker`` goes in its comment segment."""
    image = Image.new("RGB", size, (30, 120, 200))
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, comment=marker.encode() if marker else b"")
    return out.getvalue()


def skin_photo(*, seed: int, kind: str = "PNG", size: tuple[int, int] = (160, 120)) -> bytes:
    """A small 'photo' of skin with a reddish patch, as a patient would send one:
    a flat skin tone, a little grain, one or two blotches. ``kind`` is PNG or JPEG."""
    rng = random.Random(seed)  # noqa: S311 - pixels, not secrets
    width, height = size
    tone = (rng.randint(200, 235), rng.randint(160, 195), rng.randint(135, 170))
    image = Image.new("RGB", size, tone)
    draw = ImageDraw.Draw(image)
    for _ in range(width * height // 12):  # grain
        x, y = rng.randrange(width), rng.randrange(height)
        shade = rng.randint(-12, 12)
        draw.point((x, y), fill=tuple(max(0, min(255, c + shade)) for c in tone))
    for _ in range(rng.randint(1, 2)):  # the patch that worries the patient
        cx, cy = rng.randint(width // 4, 3 * width // 4), rng.randint(height // 4, 3 * height // 4)
        rx, ry = rng.randint(10, width // 4), rng.randint(8, height // 4)
        red = (rng.randint(185, 215), rng.randint(70, 110), rng.randint(70, 100))
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=red)
    out = io.BytesIO()
    if kind.upper() == "JPEG":
        image.save(out, format="JPEG", quality=85)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


# -- PDF ---------------------------------------------------------------------------------


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (accents kept), with ``\\``, ``(`` and
    ``)`` escaped; characters WinAnsi lacks become ``?``."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_document(title: str, lines: Sequence[str] = ()) -> bytes:
    """A one-page PDF (A5) showing ``title`` in bold and ``lines`` below it.

    Text is in the clear in the file (uncompressed content stream), as in the PDFs
    most software writes without compression: tests rely on finding it there.
    """
    content = b"BT /F2 13 Tf 40 540 Td (" + _pdf_string(title) + b") Tj ET\n"
    y = 510
    for line in lines:
        content += b"BT /F1 10 Tf 40 %d Td (" % y + _pdf_string(line) + b") Tj ET\n"
        y -= 16
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>"
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 595] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        font % b"Helvetica",
        font % b"Helvetica-Bold",
    ]
    return _assemble(bodies)


def pdf_bytes(text: str = "Compte rendu") -> bytes:
    """A small, valid PDF whose page shows ``text`` (in the clear in the file)."""
    content = b"BT /F1 12 Tf 10 100 Td (" + _pdf_string(text) + b") Tj ET"
    bodies = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return _assemble(bodies)


def _assemble(bodies: Sequence[bytes]) -> bytes:
    """Objects numbered from 1, a cross-reference table with their offsets, a trailer
    whose ``startxref`` points at that table."""
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(bodies) + 1,
        xref,
    )
    return out
