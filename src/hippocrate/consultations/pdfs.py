"""Whether an attached PDF carries active content, read with a real PDF parser (qpdf,
through pikepdf) rather than by searching the bytes.

The parser resolves what a byte search misses: names spelled with ``#xx`` escapes
(``/J#61vaScript`` is ``/JavaScript``), objects packed in compressed object streams,
cross-reference streams. Every object of the file is visited (``Pdf.objects``, which
includes the objects of object streams and those that nothing references), with the
direct dictionaries and arrays nested in it, and the trailer; one finding refuses the
file:

- actions that run code or leave the document: JavaScript (and any ``/JS`` entry),
  Launch, URI, SubmitForm, ImportData, GoToR, GoToE, Rendition, RichMediaExecute,
  wherever they hang (OpenAction, ``/AA`` of the document, a page, a field or an
  annotation, link annotations, the ``/Next`` of another action);
- the ``JavaScript`` and ``EmbeddedFiles`` name trees, file specifications with an
  ``/EF`` entry, embedded file streams and FileAttachment annotations;
- XFA forms (an ``/XFA`` entry), RichMedia and 3D annotations;
- encryption (an encrypted file cannot be inspected the same way, and a password is
  not ours to ask for) and files the parser cannot open.

Parsing is bounded, because a PDF is a compressed format: qpdf's limits are set for the
process when this module is imported (a Flate, RunLength or predictor stream decodes to
at most 16 MiB, a stream has at most 5 filters), and the object streams of one file
decode to at most 64 MiB in all; beyond, the file is refused as damaged. Parsing itself
still costs memory: qpdf's objects take several times the bytes they are written in.

What is not guaranteed: the parser is not the viewer. A file qpdf has to repair to read
(it warns) is refused, since viewers repair differently; a file that qpdf reads without
a warning may still be read differently by some viewer's own parser. Content
that is not active by the PDF specification's definition is kept: text, images, fonts,
internal links (GoTo), metadata (the document information dictionary, XMP), and
exploits against a viewer's font or image decoders, which no structural check finds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pikepdf
import pikepdf.settings

from hippocrate.i18n import Message, _n, term

_STREAM_MAX_BYTES = 16 * 1024 * 1024
OBJECT_STREAMS_MAX_BYTES = 64 * 1024 * 1024
# Process-wide: nothing else in Hippocrate uses pikepdf.
pikepdf.settings.set_qpdf_limits(
    flate_max_memory=_STREAM_MAX_BYTES,
    run_length_max_memory=_STREAM_MAX_BYTES,
    png_max_memory=_STREAM_MAX_BYTES,
    tiff_max_memory=_STREAM_MAX_BYTES,
    max_stream_filters=5,
)

# Action types (the /S of an action dictionary) that run code, reach outside the
# document or open something else; the reason names them the way a user's PDF tool
# would.
_ACTIONS = {
    "/JavaScript": _n("JavaScript"),
    "/Launch": _n("launch actions (Launch)"),
    "/URI": _n("web link actions (URI)"),
    "/SubmitForm": _n("form submission actions (SubmitForm)"),
    "/ImportData": _n("data import actions (ImportData)"),
    "/GoToR": _n("actions that open another file (GoToR)"),
    "/GoToE": _n("actions that open an embedded file (GoToE)"),
    "/Rendition": _n("media rendition actions (Rendition)"),
    "/RichMediaExecute": _n("rich media (RichMediaExecute)"),
}
# Keys whose mere presence says what the file carries.
_KEYS = {
    "/JS": _n("JavaScript"),
    "/JavaScript": _n("JavaScript"),  # the document's JavaScript name tree
    "/EmbeddedFiles": _n("embedded files"),
    "/EF": _n("embedded files"),
    "/XFA": _n("XFA forms"),
    "/RichMediaContent": _n("rich media"),
    "/RichMediaSettings": _n("rich media"),
}
_SUBTYPES = {
    "/FileAttachment": _n("embedded files"),
    "/RichMedia": _n("rich media"),
    "/3D": _n("3D content"),
}
_TYPES = {"/EmbeddedFile": _n("embedded files")}


def refusal(content: bytes) -> Message | None:
    """Why the PDF in ``content`` is refused (a reason fit to show the sender, in
    English and translatable), or None when it carries none of the active content
    listed in the module docstring."""
    try:
        with pikepdf.open(io.BytesIO(content)) as pdf:
            if pdf.is_encrypted:
                return Message(_n("encrypted PDF files are refused"))
            found = _first_finding(pdf)
            # qpdf warns when it has to repair the file to read it (a cross-reference
            # rebuilt from a scan, an object that does not parse). Viewers repair
            # differently: what one of them finds there, qpdf may have missed.
            if found is None and pdf.get_warnings():
                return Message(_n("the PDF is damaged (a reader would have to repair it)"))
    except pikepdf.PasswordError:
        return Message(_n("encrypted PDF files are refused"))
    except (pikepdf.PdfError, ValueError, RecursionError, _TooLarge):
        return Message(_n("the PDF is damaged and cannot be read"))
    if found is None:
        return None
    return Message(_n("PDF files with {found} are refused"), found=term(found))


class _TooLarge(Exception):
    """The file's object streams decode to more than the budget."""


def _every_object(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Object]:
    """The trailer, then every object of the cross-reference (compressed ones included,
    unreferenced ones too), each object stream measured before its objects are read."""
    yield pdf.trailer
    measured: set[int] = set()
    decoded = 0
    for (number, generation), entry in sorted(pdf.get_xref_table().items()):
        if entry.type == 0:  # a free entry
            continue
        holder = entry.obj_stream_number if entry.type == 2 else None
        if holder is not None and holder not in measured:
            measured.add(holder)
            container = pdf.get_object((holder, 0))
            if isinstance(container, pikepdf.Stream):
                decoded += len(container.read_bytes())
            if decoded > OBJECT_STREAMS_MAX_BYTES:
                raise _TooLarge
        yield pdf.get_object((number, generation))


def _first_finding(pdf: pikepdf.Pdf) -> str | None:
    for root in _every_object(pdf):
        # Indirect objects nested in this one are visited as roots of their own.
        pending = [root]
        while pending:
            item = pending.pop()
            if isinstance(item, pikepdf.Array):
                pending.extend(v for v in item if _direct_container(v))
            elif isinstance(item, pikepdf.Dictionary | pikepdf.Stream):
                found = _finding_in(item)
                if found is not None:
                    return found
                pending.extend(v for v in item.values() if _direct_container(v))
    return None


def _direct_container(value: object) -> bool:
    return isinstance(value, pikepdf.Array | pikepdf.Dictionary | pikepdf.Stream) and not (
        value.is_indirect
    )


def _finding_in(item: pikepdf.Object) -> str | None:
    for key, what in _KEYS.items():
        if key in item:
            return what
    kind = _name(item.get("/Type"))
    if kind in _TYPES:
        return _TYPES[kind]
    subtype = _name(item.get("/Subtype"))
    if subtype in _SUBTYPES and kind in (None, "/Annot"):
        return _SUBTYPES[subtype]
    action = _name(item.get("/S"))
    # /S also names structure element types, transitions and groups: only a
    # dictionary that is, or may be, an action counts.
    if action in _ACTIONS and kind in (None, "/Action"):
        return _ACTIONS[action]
    return None


def _name(value: object) -> str | None:
    return str(value) if isinstance(value, pikepdf.Name) else None
