"""Issuing the report and the prescription when a consultation closes, and checking a
document anyone holds.

Issuing: the practitioner who closes reads the patient's name and birth date (an
audited read, through the policy), the PDFs are printed and signed, and they are
attached to a message from the practitioner in the consultation: sealed at rest under
the patient's key like every attachment, downloaded through the policy, exported,
shredded with the patient. Each gets a verification code printed on it; the database
keeps a keyed digest of the code and the SHA-256 of the signed file (``models.py``).

Checking: with the file, the answer is whether Hippocrate issued exactly this file
(a signature by this deployment's key over the whole file, and a file it recorded);
with only the code, whether Hippocrate issued a document with that code. Neither says
anything of what a document contains, nor whose it is.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hippocrate.access import policy
from hippocrate.access.principal import Principal
from hippocrate.blobs import BlobStore
from hippocrate.config import Settings
from hippocrate.consultations.files import CheckedFile
from hippocrate.consultations.models import Attachment, Consultation
from hippocrate.consultations.schemas import SPECIALTIES
from hippocrate.consultations.service import add_documents
from hippocrate.db.sealed import vault_of
from hippocrate.documents import render
from hippocrate.documents.models import IssuedDocument
from hippocrate.documents.signing import Verdict, sign_pdf, verify_pdf
from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n
from hippocrate.identity.models import Practitioner
from hippocrate.interop.fhir import prescription_lines
from hippocrate.patients.service import readable_record
from hippocrate.vault import KeyProviderError
from hippocrate.vault.documents import document_signing_key
from hippocrate.vault.providers.base import DocumentKey

_log = logging.getLogger("hippocrate.documents")
CODE_PURPOSE = b"hippocrate.document-code.v1"
# Crockford's base32 without the letters that read like digits: 12 characters, 60 bits.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REPORT_NAME = "compte-rendu-hippocrate.pdf"
PRESCRIPTION_NAME = "ordonnance-hippocrate.pdf"
MESSAGE = "Compte rendu et ordonnance de la téléconsultation, signés par Hippocrate."
MESSAGE_REPORT_ONLY = "Compte rendu de la téléconsultation, signé par Hippocrate."


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalised_code(code: str) -> str | None:
    """The code as printed (``XXXX-XXXX-XXXX``) from what someone typed, or None."""
    compact = "".join(code.split()).replace("-", "").upper()
    compact = compact.replace("O", "0").replace("I", "1").replace("L", "1")
    if len(compact) != 12 or any(c not in _ALPHABET for c in compact):
        return None
    return f"{compact[:4]}-{compact[4:8]}-{compact[8:]}"


def _code_digest(session: Session, code: str) -> bytes:
    key = vault_of(session).provider.derive_index_key(CODE_PURPOSE)
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).digest()


class DocumentsUnavailable(HippocrateError):
    """The document signing key cannot be read: nothing is issued, nothing closes."""

    status = 503
    title = _n("Documents cannot be signed")


def signing_key(session: Session, settings: Settings) -> DocumentKey:
    """The deployment's document signing key, where the session's key provider keeps
    it (its own file, or the HSM token); which one is not this module's concern."""
    try:
        return document_signing_key(settings, vault_of(session).provider)
    except KeyProviderError as exc:
        raise _unusable(exc) from None


def _unusable(exc: KeyProviderError) -> DocumentsUnavailable:
    """The operator reads what is wrong in the log; the caller, that it is not theirs."""
    _log.error("documents cannot be signed: %s", exc)
    return DocumentsUnavailable(_n("documents cannot be signed at the moment; try again later"))


@dataclass(frozen=True)
class Printed:
    name: str
    code: str
    signed: bytes


def issue(
    *,
    session: Session,
    settings: Settings,
    blobs: BlobStore,
    principal: Principal,
    consultation: Consultation,
    now: datetime,
) -> list[Attachment]:
    """The signed report and (if any) prescription of ``consultation``, which
    ``principal`` (its practitioner) has just closed, attached to a message of theirs."""
    key = signing_key(session, settings)
    font = render.font_path(settings.document_font)
    practitioner = session.scalars(
        policy.readable_practitioners(principal, now=now).where(
            Practitioner.account_id == principal.account_id
        )
    ).one()
    patient = readable_record(
        session=session, principal=principal, patient_id=consultation.patient_id, now=now
    )
    prescriber = render.Prescriber(
        given_names=practitioner.given_names or "",
        family_name=practitioner.family_name or "",
        specialty=SPECIALTIES.get(practitioner.specialty, practitioner.specialty),
        rpps=practitioner.rpps or "",
    )
    person = render.Person(
        given_names=patient.given_names or "",
        family_name=patient.family_name or "",
        birth_date=patient.birth_date,  # type: ignore[arg-type]
    )
    verify_url = f"{settings.public_url.rstrip('/')}/documents/verify"
    printed = []
    code = new_code()
    report = render.report_pdf(
        font=font,
        prescriber=prescriber,
        patient=person,
        report=consultation.report or "",
        acts=list(consultation.acts or []),
        issued=render.Issued(code, now, verify_url),
    )
    printed.append(Printed(REPORT_NAME, code, sign_pdf(report, key)))
    items = prescription_lines(consultation.prescription)
    if items:
        code = new_code()
        prescription = render.prescription_pdf(
            font=font,
            prescriber=prescriber,
            patient=person,
            items=items,
            issued=render.Issued(code, now, verify_url),
        )
        printed.append(Printed(PRESCRIPTION_NAME, code, sign_pdf(prescription, key)))
    attachments = add_documents(
        session=session,
        blobs=blobs,
        consultation=consultation,
        author_account_id=principal.account_id,
        body=MESSAGE if items else MESSAGE_REPORT_ONLY,
        files=[CheckedFile(p.name, "application/pdf", p.signed) for p in printed],
        now=now,
    )
    for attachment, document in zip(attachments, printed, strict=True):
        session.add(
            IssuedDocument(
                attachment_id=attachment.id,
                code_digest=_code_digest(session, document.code),
                content_digest=hashlib.sha256(document.signed).digest(),
            )
        )
    session.flush()
    return attachments


# -- checking --------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """The answer about one document: only whether Hippocrate issued it, unchanged."""

    issued: bool  # Hippocrate issued a document with this code, or exactly this file
    unaltered: bool | None  # with a file: signed by this deployment and unchanged
    reason: str


def check_code(*, session: Session, code: str) -> Check:
    normalised = normalised_code(code)
    if normalised is None:
        return Check(False, None, "this is not a Hippocrate verification code")
    found = session.scalar(
        select(IssuedDocument.id).where(
            IssuedDocument.code_digest == _code_digest(session, normalised)
        )
    )
    if found is None:
        return Check(False, None, "Hippocrate issued no document with this code")
    return Check(True, None, "Hippocrate issued a document with this code")


def check_file(*, session: Session, settings: Settings, data: bytes) -> Check:
    verdict: Verdict = verify_pdf(data, signing_key(session, settings))
    if not verdict.signed:
        return Check(False, False, "this file carries no signature of Hippocrate")
    if not verdict.ours:
        return Check(False, False, "this file is not signed by this Hippocrate platform")
    if not verdict.intact or not verdict.whole:
        return Check(False, False, "this file was changed after Hippocrate signed it")
    known = session.scalar(
        select(IssuedDocument.id).where(
            IssuedDocument.content_digest == hashlib.sha256(data).digest()
        )
    )
    if known is None:
        return Check(False, False, "Hippocrate has no record of issuing this file")
    return Check(True, True, "Hippocrate issued this document, and it is unchanged")
