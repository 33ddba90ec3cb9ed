"""The document font is parsed once per process, and documents printed one after the
other or at once by several threads still each carry exactly their own text and glyphs:
the same bytes fpdf2 prints when it parses the font itself."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from fpdf.fonts import TTFFont
from pypdf import PdfReader

from hippocrate.documents import render

FONT = render.font_path(None)
PRESCRIBER = render.Prescriber("Claire", "Dubreuil", "Médecine générale", "10003456789")
AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Letters of scripts no other line here uses: a glyph leaking from one document's subset
# into another's, or missing from its own, shows in the extracted text.
ALPHABETS = ["αβγδεζηθ", "абвгдежз", "ŁŃŚŹŻĽŤŇ", "ⅠⅡⅢⅣⅤⅥⅦⅧ", "∀∂∃∅∇∈∉∋", "ĀĂĄĆĈĊČĎ"]


def _prescription(n: int) -> bytes:
    return render.prescription_pdf(
        font=FONT,
        prescriber=PRESCRIBER,
        patient=render.Person("Lucie", "Martin", date(1985, 6, 14)),
        items=[f"Ligne {n} : {ALPHABETS[n % len(ALPHABETS)]} µg ≥ œ"],
        issued=render.Issued("K7PX-3QHM-2WZD", AT, "https://h.example/documents"),
    )


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _font_files(pdf: bytes) -> list[bytes]:
    """The embedded font programs (FontFile2) of the first page's fonts."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    found = []
    for ref in page["/Resources"]["/Font"].values():
        descendant = ref.get_object()["/DescendantFonts"][0].get_object()
        found.append(descendant["/FontDescriptor"]["/FontFile2"].get_object().get_data())
    return sorted(found)


def _has_only_its_own_letters(n: int, pdf: bytes) -> bool:
    text = _text(pdf)
    own = ALPHABETS[n % len(ALPHABETS)]
    others = [a for a in ALPHABETS if a != own]
    return f"Ligne {n} : {own} µg ≥ œ" in text and not any(c in text for a in others for c in a)


def test_the_font_is_parsed_once_and_each_document_has_its_own_subset() -> None:
    first = render._Page(FONT, "a")
    second = render._Page(FONT, "b")
    # The parsed tables are shared; what printing writes into is each page's own.
    assert first.fonts["doc"].cmap is second.fonts["doc"].cmap
    # (The fontTools font each subsets is given when it is saved: ``_Page.output``.)
    for per_document in ("subset", "cw", "glyph_ids", "desc", "missing_glyphs"):
        assert getattr(first.fonts["doc"], per_document) is not getattr(
            second.fonts["doc"], per_document
        ), per_document

    documents = [_prescription(n) for n in range(len(ALPHABETS))]
    for n, pdf in enumerate(documents):
        assert _has_only_its_own_letters(n, pdf), n


def test_documents_printed_at_once_by_several_threads_keep_their_own_glyphs() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        printed = list(pool.map(_prescription, range(48)))
    for n, pdf in enumerate(printed):
        assert _has_only_its_own_letters(n, pdf), n
    # Same input, same font program: nothing of another thread's document got in.
    alone = _prescription(5)
    assert _font_files(printed[5]) == _font_files(alone)
    assert _font_files(printed[11]) == _font_files(alone)


class _ParsedEachTime(render._Page):
    """A page whose font fpdf2 parses by itself, as before the font was kept."""

    def _add_face(self, style: str, path: Path) -> None:
        self.add_font("Doc", style, str(path))


@pytest.mark.parametrize(
    "line",
    [
        "Amoxicilline 1 g : matin et soir ≥ 6 jours, 500 µg, cœur",
        # Beyond the glyphs every narrowed face keeps, and one glyph the font lacks.
        "Пациент Ἀθηνᾶ; ψ ≈ ∑ ∞ ✓ ☺ ğ ş ı Ș ț שלום 中",
    ],
)
def test_the_kept_font_prints_what_fpdf2_prints_by_itself(line: str) -> None:
    """Parsed once, narrowed before saving: the same bytes as fpdf2 parsing the whole
    face for the document and subsetting it."""

    def page(cls: type[render._Page]) -> bytes:
        made = cls(FONT, "Ordonnance")
        made.heading("Ordonnance")
        made.line_of(line)
        made.set_creation_date(AT)
        return bytes(made.output())

    assert page(render._Page) == page(_ParsedEachTime)


def test_documents_of_common_letters_share_one_narrowed_face() -> None:
    """French documents need the glyphs every narrowed face keeps: the face is narrowed
    once per process, not per document; a letter beyond them narrows one more."""
    render._narrowed.cache_clear()
    for n in range(5):
        render.report_pdf(
            font=FONT,
            prescriber=PRESCRIBER,
            patient=render.Person("Maëlys", f"Lefèvre-{n}", date(1985, 6, 14)),
            report=f"Douleurs depuis {n} jours ; « contrôle » à 1 mois — cœur, 500 µg.",
            acts=[],
            issued=render.Issued("K7PX-3QHM-2WZD", AT, "https://h.example/documents"),
        )
    faces = render._narrowed.cache_info()
    assert (faces.misses, faces.hits) == (2, 8)  # the regular face and the bold one
    assert _has_only_its_own_letters(1, _prescription(1))
    assert render._narrowed.cache_info().misses == 3


def test_fpdf2_keeps_the_font_attributes_the_cache_knows() -> None:
    # A new fpdf2 that adds state to a font must be reviewed against _PER_DOCUMENT
    # before this cache shares it between documents.
    assert set(TTFFont.__slots__) == {
        "_hbfont", "biggest_size_pt", "cff_ros", "cmap", "collection_font_number",
        "color_font", "cw", "desc", "emphasis", "fontkey", "glyph_ids", "i", "is_cff",
        "is_cid_keyed", "is_compressed", "is_symbol", "missing_glyphs", "name",
        "palette_index", "scale", "sp", "ss", "subset", "ttffile", "ttfont", "type",
        "unicode_range", "up", "ut",
    }  # fmt: skip
