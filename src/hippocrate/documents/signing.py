"""PAdES signatures on the PDFs Hippocrate issues, and their verification.

Signing: one PAdES baseline signature (ETSI.CAdES.detached, SHA-256, ECDSA P-256) over
the whole file, by the deployment's document signing key (``vault/documents.py``),
wherever the key provider keeps it: this module sees only a certificate and a ``sign``
(the key file's key in memory, or the HSM's token computing the signature). Verifying:
the signature must be intact, made by that key's certificate (the only trust root:
a document signed by any other key, another Hippocrate's included, is refused), and
cover the entire file (nothing appended after signing).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hippocrate.vault.providers.base import DocumentKey

FIELD = "Hippocrate"
REASON = "Document émis par Hippocrate"

# pyHanko reports a refused signature at WARNING; a refusal is an answer here.
logging.getLogger("pyhanko").setLevel(logging.ERROR)
logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Verdict:
    """What a signature check says; ``valid`` only when everything holds."""

    signed: bool  # carries a signature at all
    intact: bool  # the signed bytes are unchanged
    ours: bool  # signed by this deployment's key
    whole: bool  # the signature covers the entire file

    @property
    def valid(self) -> bool:
        return self.signed and self.intact and self.ours and self.whole


UNSIGNED = Verdict(signed=False, intact=False, ours=False, whole=False)


def _certificate(key: DocumentKey) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(key.certificate)


class _KeySigner(signers.Signer):
    """A pyHanko signer whose raw signature comes from the document key (ECDSA P-256
    with SHA-256, DER-encoded as CMS carries it), wherever the key is held."""

    def __init__(self, key: DocumentKey) -> None:
        certificate = _certificate(key)
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs([certificate]),  # type: ignore[no-untyped-call]
        )
        self._key = key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != "sha256":
            raise ValueError(f"documents are signed with SHA-256, not {digest_algorithm}")
        if dry_run:
            # The largest DER ECDSA P-256 signature: pyHanko sizes the placeholder on it.
            return bytes(72)
        return self._key.sign(data)


def sign_pdf(pdf: bytes, key: DocumentKey) -> bytes:
    """``pdf`` with the platform's PAdES signature over all of it."""
    signer = _KeySigner(key)
    metadata = signers.PdfSignatureMetadata(
        field_name=FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=REASON,
        location="France",
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    return bytes(signers.sign_pdf(writer, metadata, signer=signer).getvalue())


def verify_pdf(data: bytes, key: DocumentKey) -> Verdict:
    """Check the first signature of ``data`` against this deployment's certificate.
    Anything that is not a readable, signed PDF is ``UNSIGNED``."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, OSError):
        return UNSIGNED
    if not signatures:
        return UNSIGNED
    context = ValidationContext(trust_roots=[_certificate(key)], allow_fetching=False)
    try:
        status = validate_pdf_signature(signatures[0], context)
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError):
        return Verdict(signed=True, intact=False, ours=False, whole=False)
    return Verdict(
        signed=True,
        intact=bool(status.intact and status.valid),
        ours=bool(status.trusted),
        whole=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
    )
