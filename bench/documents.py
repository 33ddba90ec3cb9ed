"""Issued documents: printing and signing a prescription, and checking one, per document.

Printing is measured twice in the same run: as Hippocrate prints (the font parsed once
per process) and with fpdf2 parsing the font for each document, as it did before.
Signing and checking are measured with the file key and, when SoftHSM2 is installed,
with the key in a SoftHSM2 token (the pkcs11 provider: the token computes the ECDSA
signature). Beside them, the floors: an empty page printed by the same library, one
ECDSA P-256 signature of a SHA-256 digest in memory (what a PAdES signature costs at
least, without the PDF around it), and the same signature by the token.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from fpdf import FPDF

from bench.timing import Case, Timing, measure
from hippocrate.documents import render
from hippocrate.documents.signing import sign_pdf, verify_pdf
from hippocrate.vault.documents import create_document_signing_key, load_document_signing_key
from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider

PRESCRIBER = render.Prescriber("Claire", "Dubreuil", "Médecine générale", "10003456789")
PATIENT = render.Person("Lucie", "Martin", date(1985, 6, 14))
ITEMS = [
    "Amoxicilline 1 g : un comprimé matin et soir pendant 6 jours",
    "Paracétamol 1 g : si fièvre, sans dépasser 3 g par jour",
    "Lavages de nez au sérum physiologique, trois fois par jour",
]


class _ParsedEachTime(render._Page):
    """The page as printed before: fpdf2 parses the font for each document."""

    def _add_face(self, style: str, path: Path) -> None:
        self.add_font("Doc", style, str(path))


@contextmanager
def _font_parsed_each_time() -> Iterator[None]:
    kept = render._Page
    render._Page = _ParsedEachTime  # type: ignore[misc]
    try:
        yield
    finally:
        render._Page = kept  # type: ignore[misc]


@contextmanager
def _whole_face_subset() -> Iterator[None]:
    """The page as printed before faces were narrowed: the subsetter is given the
    whole face when the document is saved."""
    kept = render._font_for
    render._font_for = lambda data, uncommon: render._opened(data)
    try:
        yield
    finally:
        render._font_for = kept


@contextmanager
def _token() -> Iterator[Pkcs11KeyProvider | None]:
    """A provider on a fresh SoftHSM2 token made by init, or None without SoftHSM2."""
    if shutil.which("softhsm2-util") is None:
        yield None
        return
    from tests.softhsm import make_token, unique_label

    directory = Path(tempfile.mkdtemp(prefix="hippocrate-bench-documents-hsm-"))
    module, label, pin = make_token(directory, label=unique_label("bench-documents"))
    provider = Pkcs11KeyProvider.initialise(module=module, token_label=label, pin=pin)
    try:
        yield provider
    finally:
        provider.close()


def _discard(run: Callable[[], object]) -> Callable[[], None]:
    def case() -> None:
        run()

    return case


def run(*, repeat: int = 5) -> dict[str, Timing]:
    folder = Path(tempfile.mkdtemp(prefix="hippocrate-bench-documents-"))
    create_document_signing_key(folder / "documents.key")
    key = load_document_signing_key(folder / "documents.key")
    font = render.font_path(None)
    issued = render.Issued("K7PX-3QHM-2WZD", datetime.now(UTC), "https://h.example/documents")

    def printed() -> bytes:
        return render.prescription_pdf(
            font=font, prescriber=PRESCRIBER, patient=PATIENT, items=ITEMS, issued=issued
        )

    def printed_before() -> None:
        with _font_parsed_each_time():
            printed()

    def printed_whole_face() -> None:
        with _whole_face_subset():
            printed()

    page = printed()
    signed = sign_pdf(page, key)

    def empty_page() -> None:
        pdf = FPDF()
        pdf.add_page()
        pdf.output()

    from bench import documents_floor  # the one ECDSA signature, beside the vault

    with _token() as token:
        cases = [
            Case(
                "print the prescription (font parsed once, narrowed once per process)",
                _discard(printed),
                1,
            ),
            Case("print it, whole face subset per document (before)", printed_whole_face, 1),
            Case("print it, font parsed per document (before that)", printed_before, 1),
            Case("sign it (PAdES), file key", _discard(lambda: sign_pdf(page, key)), 1),
        ]
        if token is not None:
            token_key = token.document_key()
            token_signed = sign_pdf(page, token_key)
            cases.append(
                Case(
                    "sign it (PAdES), key in SoftHSM2",
                    _discard(lambda: sign_pdf(page, token_key)),
                    1,
                )
            )
        cases += [
            Case("print and sign, file key", _discard(lambda: sign_pdf(printed(), key)), 1),
            Case("check a signed one, file key", _discard(lambda: verify_pdf(signed, key)), 1),
        ]
        if token is not None:
            cases.append(
                Case(
                    "check a signed one, key in SoftHSM2",
                    _discard(lambda: verify_pdf(token_signed, token_key)),
                    1,
                )
            )
        cases += [
            Case("floor: empty page", empty_page, 1),
            Case("floor: one ECDSA P-256 signature in memory", documents_floor.signer(key), 1),
        ]
        if token is not None:
            cases.append(
                Case(
                    "floor: one ECDSA P-256 signature by SoftHSM2",
                    documents_floor.token_signer(token_key),
                    1,
                )
            )
        return measure(cases, repeat=repeat)


def report(timings: dict[str, Timing]) -> str:
    lines = [
        "## Issued documents",
        "",
        "| per document | median | best |",
        "|---|---:|---:|",
    ]
    for name, timing in timings.items():
        lines.append(f"| {name} | {timing.median / 1e6:.2f} ms | {timing.best / 1e6:.2f} ms |")
    lines.append("")
    return "\n".join(lines)
