"""Issued documents: printing and signing a prescription, and checking one, per document.

Beside them in the same run, the floors: an empty page printed by the same library,
and one ECDSA P-256 signature of a SHA-256 digest (what a PAdES signature costs at
least, without the PDF around it).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from fpdf import FPDF

from bench.timing import Case, Timing, measure
from hippocrate.documents import render
from hippocrate.documents.signing import sign_pdf, verify_pdf
from hippocrate.vault.documents import create_document_signing_key, load_document_signing_key

PRESCRIBER = render.Prescriber("Claire", "Dubreuil", "Médecine générale", "10003456789")
PATIENT = render.Person("Lucie", "Martin", date(1985, 6, 14))
ITEMS = [
    "Amoxicilline 1 g : un comprimé matin et soir pendant 6 jours",
    "Paracétamol 1 g : si fièvre, sans dépasser 3 g par jour",
    "Lavages de nez au sérum physiologique, trois fois par jour",
]


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

    page = printed()
    signed = sign_pdf(page, key)

    def empty_page() -> None:
        pdf = FPDF()
        pdf.add_page()
        pdf.output()

    from bench import documents_floor  # the one ECDSA signature, beside the vault

    cases = [
        Case("print the prescription", lambda: printed() and None, 1),
        Case("sign it (PAdES)", lambda: sign_pdf(page, key) and None, 1),
        Case("print and sign", lambda: sign_pdf(printed(), key) and None, 1),
        Case("check a signed one", lambda: verify_pdf(signed, key) and None, 1),
        Case("floor: empty page", empty_page, 1),
        Case("floor: one ECDSA P-256 signature", documents_floor.signer(key), 1),
    ]
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
