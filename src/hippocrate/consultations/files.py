"""What an attached file must be before it is stored: a PDF, JPEG or PNG whose content
says so, whose structure is whole, whose name and declared type agree with it, and that
carries no active content or metadata.

The checks read the bytes, never trust the extension or the declared type alone:

1. size: not empty, at most the configured limit;
2. name: reduced to a base name without control or bidirectional characters;
3. magic bytes: ``%PDF-``, ``FF D8 FF`` (JPEG) or the PNG signature;
4. the name's extension and the declared media type (when one is sent) must match the
   type the content shows;
5. structure: a PDF ends with ``%%EOF`` after a ``startxref`` whose offset points at a
   cross-reference table or stream; an image opens in Pillow, passes ``verify()``
   (PNG: every chunk's CRC up to ``IEND``) and decodes to the end, so a truncated file
   fails; images above a pixel limit are refused before decoding (decompression bombs);
6. content: a PDF is parsed (``pdfs.py``) and refused when any of its objects carries
   active content (JavaScript, launch, URI, submit or import actions, actions that open
   other files, embedded files, XFA, rich media) or when it is encrypted or unreadable;
   an image is re-encoded without metadata (``images.py``), and that cleaned image is
   what the caller stores. A PDF is stored as sent.

Nothing here writes anything: a refusal leaves no trace.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass

from PIL import Image

from hippocrate.consultations import images, pdfs
from hippocrate.consultations.errors import AttachmentRejected, AttachmentTooLarge
from hippocrate.i18n import Message, _n

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"

EXTENSIONS: dict[str, tuple[str, ...]] = {PDF: (".pdf",), JPEG: (".jpg", ".jpeg"), PNG: (".png",)}
_ALIASES = {"image/jpg": JPEG, "image/pjpeg": JPEG, "application/x-pdf": PDF}
# Types a client sends when it does not know better; they claim nothing.
_UNSPECIFIC = {"", "application/octet-stream", "binary/octet-stream"}
_LABEL = {
    PDF: Message(_n("a PDF document")),
    JPEG: Message(_n("a JPEG image")),
    PNG: Message(_n("a PNG image")),
}

MAX_PIXELS = 64_000_000  # a 64-megapixel photo; larger is refused before decoding
MAX_NAME_CHARS = 200
_PDF_TAIL = 2048
_PDF_HEADER = re.compile(rb"%PDF-[12]\.\d")
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF[\s\x00]*\Z")
_XREF_AT = re.compile(rb"\s*(?:xref\b|\d+\s+\d+\s+obj\b)")


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed every check: its clean name, its true type, and the bytes to
    store (for an image, the re-encoded one without metadata)."""

    filename: str
    media_type: str
    content: bytes


def check_file(
    *,
    position: int,
    filename: str | None,
    declared_type: str | None,
    content: bytes,
    max_bytes: int,
) -> CheckedFile:
    """Check one file (``position`` is 1-based, for the error message); raises
    ``AttachmentTooLarge`` or ``AttachmentRejected``."""
    if len(content) > max_bytes:
        raise AttachmentTooLarge(max_bytes)
    if not content:
        raise AttachmentRejected(position, _n("the file is empty"))
    name = clean_filename(filename)
    if name is None:
        raise AttachmentRejected(position, _n("the file needs a name (e.g. report.pdf)"))
    actual = sniff(content)
    if actual is None:
        raise AttachmentRejected(position, _n("only PDF, JPEG and PNG files are accepted"))
    extension = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in EXTENSIONS[actual]:
        shown = extension or Message(_n("no extension"))
        raise AttachmentRejected(
            position,
            _n("the name says {shown} but the content is {kind}"),
            shown=shown,
            kind=_LABEL[actual],
        )
    declared = _media_type(declared_type)
    if declared not in _UNSPECIFIC and declared != actual:
        raise AttachmentRejected(
            position,
            _n("declared as {declared} but the content is {kind}"),
            declared=declared,
            kind=_LABEL[actual],
        )
    if actual == PDF:
        _check_pdf(position, content)
        cleaned = content
    else:
        cleaned = _clean_image(position, content, actual)
    return CheckedFile(filename=name, media_type=actual, content=cleaned)


def sniff(content: bytes) -> str | None:
    """The type the first bytes show, among the accepted ones."""
    if _PDF_HEADER.match(content):
        return PDF
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    return None


def clean_filename(raw: str | None) -> str | None:
    """A base name fit to store and to send back in Content-Disposition, or None.

    Path parts are dropped (``../../x.pdf`` is ``x.pdf``), control and format
    characters removed (bidirectional overrides make ``gpj.exe`` look like ``exe.jpg``),
    leading dots removed; names longer than 200 characters are refused.
    """
    if not raw:
        return None
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".").strip()
    if not name or len(name) > MAX_NAME_CHARS:
        return None
    return name


def _media_type(declared: str | None) -> str:
    value = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(value, value)


def _check_pdf(position: int, content: bytes) -> None:
    tail = content[-_PDF_TAIL:]
    found = _STARTXREF.search(tail)
    if found is None:
        raise AttachmentRejected(position, _n("the PDF is truncated or damaged (no %%EOF trailer)"))
    offset = int(found.group(1))
    if offset >= len(content) or not _XREF_AT.match(content, offset):
        raise AttachmentRejected(
            position, _n("the PDF is truncated or damaged (its cross-reference is missing)")
        )
    reason = pdfs.refusal(content)
    if reason is not None:
        raise AttachmentRejected(position, reason)


_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG"}


def _clean_image(position: int, content: bytes, media_type: str) -> bytes:
    expected = _PIL_FORMAT[media_type]
    too_large = AttachmentRejected(
        position,
        _n("the image is larger than {megapixels} megapixels"),
        megapixels=MAX_PIXELS // 1_000_000,
    )
    try:
        with warnings.catch_warnings():
            # Pillow warns about malformed EXIF blocks, which the cleaning drops anyway.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=[expected]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise too_large
                image.verify()
            # verify() does not read a JPEG's scan data: the full decode that the
            # re-encoding needs fails on a truncated image.
            with Image.open(io.BytesIO(content), formats=[expected]) as image:
                image.load()
                return images.without_metadata(image, expected)
    except AttachmentRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_large from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise AttachmentRejected(
            position, _n("the image is truncated or damaged ({format})"), format=expected
        ) from exc
