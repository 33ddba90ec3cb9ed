"""The report (compte rendu) and the prescription (ordonnance) as PDF pages, in French.

What a French prescription carries (Code de la santé publique, R.5132-3, and the
telemedicine rules): the prescriber's name, specialty and RPPS number, the patient's
name and birth date (and weight when the prescription needs it), the date, the items,
that it was issued after a teleconsultation, and here a verification code with where
to check it. The practitioner's and patient's texts are printed as written, in a
Unicode font, so nothing a practitioner typed (µg, ≥, œ) is dropped or changed.

The font is parsed once per process and face (:func:`_face`), not once per document:
parsing a DejaVu face is most of what printing a page costs. Each document gets its
own copy of everything fpdf2 changes while printing (the glyph subset, the widths
table, the font descriptor, the fontTools font it subsets in place when saving); the
parsed tables it only reads are shared, never written after parsing. So documents
printed at once by several request threads do not see each other's glyphs.

Saving a document subsets its font to the glyphs it uses, and the subsetter decompiles
every glyph of the face it is given (some 6,000 in DejaVu Sans): most of what printing
still cost. So each document is given, just before it is saved, the face already
narrowed to the glyphs of French text (Latin-1, Latin Extended-A, the typographer's
punctuation) plus any other its text uses, made once per process and set of other
glyphs (:func:`_narrowed`): fpdf2 subsets that to the document's own glyphs, the same
glyphs, outlines and metrics it would have taken from the whole face.
"""

from __future__ import annotations

import copy
import functools
import io
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from fontTools import subset as subsetting  # type: ignore[import-untyped]
from fontTools import ttLib
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n

PARIS = ZoneInfo("Europe/Paris")
# DejaVu Sans ships with the package (fonts/, with its licence): every deployment
# prints the same documents, and nothing depends on the fonts a machine happens to have.
BUNDLED_FONT = Path(__file__).with_name("fonts") / "DejaVuSans.ttf"
TELECONSULTATION = "Ordonnance établie à l'issue d'une téléconsultation."
REPORT_STATEMENT = "Compte rendu établi à l'issue d'une téléconsultation."


class NoDocumentFont(HippocrateError):
    """No Unicode font to print documents with: an installation problem, said plainly."""

    status = 503
    title = _n("Documents cannot be printed")


@dataclass(frozen=True)
class Prescriber:
    given_names: str
    family_name: str
    specialty: str  # the specialty's French label
    rpps: str


@dataclass(frozen=True)
class Person:
    given_names: str
    family_name: str
    birth_date: date
    weight_kg: float | None = None


@dataclass(frozen=True)
class Issued:
    """What identifies one document: its code, its date, where to check it."""

    code: str
    at: datetime
    verify_url: str


def font_path(configured: Path | None) -> Path:
    """The configured TrueType font (its bold face beside it, named ``<stem>-Bold``), or
    the bundled DejaVu Sans."""
    chosen = configured or BUNDLED_FONT
    if not chosen.is_file():
        raise NoDocumentFont(
            _n(
                "the font documents are printed in is missing: set HIPPOCRATE_DOCUMENT_FONT "
                "to a TrueType font file, or reinstall Hippocrate"
            )
        )
    return chosen


# What fpdf2 (pinned) writes into a TTFFont while printing and saving one document; the
# other attributes are set when the face is parsed and only read afterwards.
_PER_DOCUMENT = frozenset(
    {
        "i",
        "ttfont",
        "cw",
        "glyph_ids",
        "desc",
        "subset",
        "missing_glyphs",
        "biggest_size_pt",
        "_hbfont",
        "color_font",
    }
)
# Tables fpdf2 (pinned) has the subsetter drop from every font it embeds. Removed from a
# document's fontTools font before it is subset, they are not decompiled first (the
# subsetter reads GSUB and GPOS before dropping them); the embedded font is the same.
_DROPPED_WHEN_EMBEDDED = frozenset(
    {
        "FFTM",
        "GDEF",
        "GPOS",
        "GSUB",
        "MATH",
        "hdmx",
        "meta",
        "sbix",
        "CBDT",
        "CBLC",
        "EBDT",
        "EBLC",
        "EBSC",
        "SVG ",
        "CPAL",
        "COLR",
    }
)
_faces: dict[tuple[Path, str, int, int], tuple[TTFFont, bytes] | None] = {}
_faces_lock = threading.Lock()
#: The characters every narrowed face keeps: French (and most Latin-script) text.
_COMMON = frozenset([*range(0x20, 0x7F), *range(0xA0, 0x180), *map(ord, "–—‘’‚“”„†‡•…‰‹›€™−≤≥µ")])
_NARROWED_KEPT = 32  # narrowed faces per process (one per set of uncommon glyphs)


def _parsed(path: Path, style: str) -> tuple[TTFFont, bytes] | None:
    """The face in ``path`` parsed once per process (again if the file changes), with
    the file's bytes; or None for a face this cache does not handle (colour, CFF,
    compressed: fpdf2 then parses it per document, as it does by itself)."""
    info = path.stat()
    key = (path, style, info.st_mtime_ns, info.st_size)
    with _faces_lock:
        if key not in _faces:
            data = path.read_bytes()
            face = TTFFont(FPDF(), path, f"doc{style}", style)
            face.ttfont.close()  # its tables are read; documents open their own
            # Without .notdef fpdf2 draws one into its fontTools font, which the
            # documents' own fontTools fonts (opened from the bytes) would not have.
            with ttLib.TTFont(io.BytesIO(data), lazy=True) as own:
                own_notdef = ".notdef" in own.getGlyphOrder()
            usable = not (face.color_font or face.is_cff or face.is_compressed) and own_notdef
            _faces[key] = (face, data) if usable else None
        return _faces[key]


def _opened(data: bytes) -> ttLib.TTFont:
    """A document's own fontTools font, from the face's bytes, lazily (tables are
    decompiled when the subsetter asks for them), without the tables fpdf2 drops."""
    font = ttLib.TTFont(io.BytesIO(data), recalcTimestamp=False, lazy=True)
    tags = set(font.keys())
    if "GPOS" in tags and "kern" in tags:
        # The subsetter drops 'kern' when 'GPOS' is there; it will not see 'GPOS'.
        tags.add("kern")
        del font["kern"]
    for tag in sorted(tags & _DROPPED_WHEN_EMBEDDED):
        del font[tag]
    return font


@functools.lru_cache(maxsize=_NARROWED_KEPT)
def _narrowed(data: bytes, uncommon: frozenset[str]) -> bytes:
    """The face in ``data`` subset to the glyphs of :data:`_COMMON` and ``uncommon``,
    with their names (fpdf2 finds glyphs by name), the rest as fpdf2 subsets."""
    font = _opened(data)
    kept = _common_glyphs(data) | uncommon
    options = subsetting.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=True)
    options.drop_tables += sorted(_DROPPED_WHEN_EMBEDDED)
    subsetter = subsetting.Subsetter(options)
    subsetter.populate(glyphs=sorted(kept))
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    font.close()
    return out.getvalue()


def _font_for(data: bytes, uncommon: frozenset[str]) -> ttLib.TTFont:
    """The fontTools font a document subsets when saved: the face in ``data``
    narrowed to the common glyphs and ``uncommon`` (opened lazily)."""
    return ttLib.TTFont(io.BytesIO(_narrowed(data, uncommon)), recalcTimestamp=False, lazy=True)


@functools.lru_cache(maxsize=_NARROWED_KEPT)
def _common_glyphs(data: bytes) -> frozenset[str]:
    """The glyphs of :data:`_COMMON` in the face in ``data``."""
    with ttLib.TTFont(io.BytesIO(data), lazy=True) as font:
        cmap = font.getBestCmap()
        return frozenset(cmap[code] for code in _COMMON if code in cmap)


def _face(pdf: FPDF, parsed: TTFFont, data: bytes) -> TTFFont:
    """A TTFFont for one document, sharing ``parsed``'s read-only tables."""
    face = TTFFont.__new__(TTFFont)
    for name in TTFFont.__slots__:
        if name not in _PER_DOCUMENT and hasattr(parsed, name):  # some are never set
            setattr(face, name, getattr(parsed, name))
    face.i = len(pdf.fonts) + 1
    # Saving subsets the fontTools font in place: each document has its own, given
    # just before saving (``_Page.output``: the face narrowed to the glyphs in use).
    face.ttfont = None
    # Reading a width the face lacks inserts the default: a table of the document's own.
    widths = parsed.cw
    assert isinstance(widths, defaultdict)
    face.cw = defaultdict(widths.default_factory, widths)
    face.glyph_ids = dict(parsed.glyph_ids)
    face.desc = copy.copy(parsed.desc)  # saving names it and links the font file to it
    face.missing_glyphs = []
    face.biggest_size_pt = 0
    face._hbfont = None
    face.color_font = None
    face.subset = SubsetMap(face)
    return face


class _Page(FPDF):
    def __init__(self, font: Path, title: str) -> None:
        super().__init__(format="A4")
        self._shared: dict[str, bytes] = {}  # the shared faces' bytes, by font key
        bold = font.with_name(font.stem + "-Bold" + font.suffix)
        self._add_face("", font)
        self._add_face("B", bold if bold.is_file() else font)
        self.set_title(title)
        self.set_author("Hippocrate")
        self.set_creator("Hippocrate")
        self.set_auto_page_break(auto=True, margin=25)
        self.set_margins(20, 20, 20)
        self.add_page()

    def _add_face(self, style: str, path: Path) -> None:
        parsed = _parsed(path, style)
        if parsed is None:
            self.add_font("Doc", style, str(path))
            return
        self.fonts[f"doc{style}"] = _face(self, *parsed)
        self._shared[f"doc{style}"] = parsed[1]

    def output(self, *args: Any, **kwargs: Any) -> Any:
        """Save the document, each shared face narrowed to the glyphs it uses first."""
        for name, data in self._shared.items():
            face = self.fonts[name]
            assert isinstance(face, TTFFont)
            uncommon = frozenset(face.subset.get_all_glyph_names()) - _common_glyphs(data)
            face.ttfont = _font_for(data, uncommon)
        return super().output(*args, **kwargs)

    def heading(self, text: str, size: float = 16) -> None:
        self.set_font("Doc", "B", size)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def line_of(self, text: str, *, bold: bool = False, size: float = 11) -> None:
        self.set_font("Doc", "B" if bold else "", size)
        self.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")

    def gap(self, height: float = 4) -> None:
        self.ln(height)


def _long_date(at: date) -> str:
    return str(format_date(at, format="long", locale="fr_FR"))


def _header(page: _Page, prescriber: Prescriber, patient: Person, issued: Issued) -> None:
    page.line_of(f"Dr {prescriber.given_names} {prescriber.family_name}", bold=True, size=13)
    page.line_of(prescriber.specialty)
    page.line_of(f"RPPS : {prescriber.rpps}")
    page.line_of("Téléconsultation par Hippocrate")
    page.gap(6)
    local = issued.at.astimezone(PARIS)
    page.line_of(f"Le {_long_date(local.date())}")
    page.gap(4)
    page.line_of(f"Patient : {patient.given_names} {patient.family_name}", bold=True)
    page.line_of(f"Né(e) le {_long_date(patient.birth_date)}")
    if patient.weight_kg is not None:
        page.line_of(f"Poids : {patient.weight_kg:g} kg")
    page.gap(6)


def _footer(page: _Page, statement: str, prescriber: Prescriber, issued: Issued) -> None:
    page.gap(8)
    page.line_of(statement)
    page.line_of(
        f"Signé électroniquement par Hippocrate pour le Dr {prescriber.given_names} "
        f"{prescriber.family_name}."
    )
    page.gap(6)
    page.line_of(f"Code de vérification : {issued.code}", bold=True)
    page.line_of(
        f"Pour vérifier que ce document a été émis par Hippocrate et n'a pas été modifié : "
        f"{issued.verify_url}",
        size=9,
    )


def prescription_pdf(
    *,
    font: Path,
    prescriber: Prescriber,
    patient: Person,
    items: list[str],
    issued: Issued,
) -> bytes:
    """One prescription: each item numbered, as the practitioner wrote it."""
    page = _Page(font, "Ordonnance")
    _header(page, prescriber, patient, issued)
    page.heading("Ordonnance")
    for number, item in enumerate(items, start=1):
        page.line_of(f"{number}. {item}")
        page.gap(2)
    _footer(page, TELECONSULTATION, prescriber, issued)
    return bytes(page.output())


def report_pdf(
    *,
    font: Path,
    prescriber: Prescriber,
    patient: Person,
    report: str,
    acts: list[str],
    issued: Issued,
) -> bytes:
    """The compte rendu, paragraphs as written, and the acts performed."""
    page = _Page(font, "Compte rendu de téléconsultation")
    _header(page, prescriber, patient, issued)
    page.heading("Compte rendu de téléconsultation")
    for paragraph in report.splitlines():
        if paragraph.strip():
            page.line_of(paragraph)
        else:
            page.gap(3)
    if acts:
        page.gap(4)
        page.line_of(f"Actes : {', '.join(acts)}")
    _footer(page, REPORT_STATEMENT, prescriber, issued)
    return bytes(page.output())
