"""Reading request bodies that carry files, in memory and within limits.

Starlette's own form parser spools files above 1 MiB to a temporary file: plaintext
medical documents on the server's disk. This reader keeps every part in memory and
enforces the limits while the body streams in, so an oversized file or one file too
many stops the upload at once, before the rest is read:

- at most ``max_files`` file parts, each at most ``max_file_bytes``;
- only the named text fields, each at most ``max_field_bytes``, each sent once;
- the whole body at most what those limits add up to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from hippocrate.consultations.errors import AttachmentTooLarge, InvalidUpload, TooManyAttachments
from hippocrate.i18n import _n, term

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "files"
_PART_OVERHEAD = 16 * 1024  # headers and boundaries of one part, generously


@dataclass(frozen=True)
class UploadedFile:
    """A file part as received: nothing about it is checked yet."""

    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_file_bytes: int
    max_field_bytes: int = 256 * 1024

    def max_body(self, text_fields: int) -> int:
        return (
            self.max_files * (self.max_file_bytes + _PART_OVERHEAD)
            + text_fields * (self.max_field_bytes + _PART_OVERHEAD)
            + _PART_OVERHEAD
        )


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_bytes(request: Request, *, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes (JSON bodies)."""
    _refuse_declared_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InvalidUpload(_n("the request body is larger than {limit} bytes"), limit=limit)
    return bytes(body)


async def read_multipart(request: Request, *, text_fields: set[str], limits: Limits) -> Upload:
    """Parse a multipart/form-data body: the ``text_fields`` and the files of the
    ``files`` field. Raises ``InvalidUpload``, ``TooManyAttachments`` or
    ``AttachmentTooLarge``."""
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidUpload(_n("a multipart/form-data body needs a boundary"))
    max_body = limits.max_body(len(text_fields))
    _refuse_declared_length(request, max_body, too_large=limits.max_file_bytes)
    parts = _Parts(text_fields, limits)
    parser = MultipartParser(boundary, parts.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise AttachmentTooLarge(limits.max_file_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise InvalidUpload(_n("the multipart body is malformed")) from None
    if not parts.ended:
        raise InvalidUpload(_n("the multipart body is incomplete"))
    return parts.upload


def _refuse_declared_length(request: Request, limit: int, too_large: int | None = None) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if too_large is not None:
            raise AttachmentTooLarge(too_large)
        raise InvalidUpload(_n("the request body is larger than {limit} bytes"), limit=limit)


#: What ``_decode`` names, marked for the catalogues.
_DECODED = (_n("field name"), _n("file name"))


def _decode(raw: bytes | bytearray, what: str) -> str:
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUpload(_n("the {what} is not valid UTF-8"), what=term(what)) from None


class _Parts:
    """Callbacks of the streaming parser, collecting parts in memory."""

    def __init__(self, text_fields: set[str], limits: Limits) -> None:
        self.text_fields = text_fields
        self.limits = limits
        self.upload = Upload()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._filename: str | None = None
        self._content_type: str | None = None
        self._data = bytearray()
        self._file_parts = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = ""
        self._filename = None
        self._content_type = None
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self._headers.get(b"content-disposition", b"").decode("latin-1")
        )
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidUpload(_n("each part needs 'Content-Disposition: form-data; name=...'"))
        self._name = _decode(options[b"name"], "field name")
        if b"filename" in options:
            if self._name != FILE_FIELD:
                raise InvalidUpload(_n("files are sent in the {field!r} field"), field=FILE_FIELD)
            self._file_parts += 1
            if self._file_parts > self.limits.max_files:
                raise TooManyAttachments(self.limits.max_files)
            self._filename = _decode(options[b"filename"], "file name")
            content_type = self._headers.get(b"content-type")
            self._content_type = content_type.decode("latin-1") if content_type else None
            return
        if self._name not in self.text_fields:
            expected = ", ".join(sorted(self.text_fields | {FILE_FIELD}))
            raise InvalidUpload(
                _n("unexpected field {name!r}; the fields are: {expected}"),
                name=self._name,
                expected=expected,
            )
        if self._name in self.upload.fields:
            raise InvalidUpload(_n("the field {name!r} is sent twice"), name=self._name)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        is_file = self._filename is not None
        limit = self.limits.max_file_bytes if is_file else self.limits.max_field_bytes
        if len(self._data) + (end - start) > limit:
            if is_file:
                raise AttachmentTooLarge(self.limits.max_file_bytes)
            raise InvalidUpload(
                _n("the field {name!r} is longer than {limit} bytes"), name=self._name, limit=limit
            )
        self._data += data[start:end]

    def on_part_end(self) -> None:
        if self._filename is None:
            self.upload.fields[self._name] = _decode(self._data, f"field {self._name!r}")
        elif self._filename == "" and not self._data:
            # A browser's file input left empty: no file.
            self._file_parts -= 1
        else:
            self.upload.files.append(
                UploadedFile(self._filename, self._content_type, bytes(self._data))
            )

    def on_end(self) -> None:
        self.ended = True
