"""The key that signs the documents Hippocrate issues (reports, prescriptions).

An ECDSA P-256 key and the self-signed certificate that names it, made once by
``hippocrate init``. With the file key provider they live in a file of their own (0600,
like the root key file); what signs and verifies a PDF (``documents/signing.py``) gets
DER bytes from here, never a key object to print or pickle. A deployment's certificate
is its identity: a document signed by another deployment's key does not verify here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hippocrate.vault.errors import KeyProviderError
from hippocrate.vault.providers.file import _read_private, _write_private

_FORMAT = "hippocrate.document-signing.v1"
_VALIDITY = timedelta(days=3650)
WHAT = "document signing key file"


@dataclass(frozen=True)
class DocumentSigningKey:
    """The private key (PKCS#8 DER) and its certificate (DER). Never printed."""

    certificate: bytes
    _private: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "DocumentSigningKey(<redacted>)"

    def __reduce__(self) -> Any:
        raise TypeError("a document signing key is not pickled")

    @property
    def private_key_der(self) -> bytes:
        return self._private


def _new(issuer: str, now: datetime) -> DocumentSigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer} : signature des documents"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, issuer),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        ]
    )
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DocumentSigningKey(certificate.public_bytes(serialization.Encoding.DER), private)


def create_document_signing_key(path: Path, *, issuer: str = "Hippocrate") -> None:
    """Make the key and its certificate in ``path`` (0600, its folder 0700 if made);
    refuses to overwrite one (documents signed by it would no longer verify)."""
    if path.exists():
        raise KeyProviderError(f"{WHAT} {path} already exists; refusing to overwrite it")
    made = _new(issuer, datetime.now(UTC))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(
        path,
        {
            "format": _FORMAT,
            "key": base64.b64encode(made.private_key_der).decode("ascii"),
            "certificate": base64.b64encode(made.certificate).decode("ascii"),
        },
    )


def load_document_signing_key(path: Path) -> DocumentSigningKey:
    """The key in ``path``; ``KeyProviderError`` if it is missing, readable by others
    or malformed."""
    document, _ = _read_private(path, WHAT)
    if document.get("format") != _FORMAT:
        raise KeyProviderError(f"{WHAT} {path} is malformed")
    try:
        private = base64.b64decode(document["key"], validate=True)
        certificate = base64.b64decode(document["certificate"], validate=True)
        x509.load_der_x509_certificate(certificate)
        serialization.load_der_private_key(private, password=None)
    except (KeyError, TypeError, ValueError):
        raise KeyProviderError(f"{WHAT} {path} is malformed") from None
    return DocumentSigningKey(certificate, private)
