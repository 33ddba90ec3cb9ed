"""The key that signs the documents Hippocrate issues (reports, prescriptions).

An ECDSA P-256 key and the self-signed certificate that names it, made once by
``hippocrate init``. Where the key lives is the key provider's choice:

- file provider: a file of its own (0600, like the root key file;
  ``HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE``, default ``DATA_DIR/document-signing.key``);
- pkcs11 provider: a key pair generated in the token (label ``hippocrate-documents``,
  the private key sensitive, not extractable, allowed only to sign) and its certificate
  as a certificate object beside it, which the token signed itself
  (:func:`token_certificate`).

What signs and verifies a PDF (``documents/signing.py``) gets a :class:`DocumentKey`
from :func:`document_signing_key`: the certificate's DER bytes and a ``sign`` that
returns an ECDSA signature, never a key object to print or pickle, and it does not know
which provider holds the key. A deployment's certificate is its identity: a document
signed by another deployment's key does not verify here.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hippocrate.config import Settings
from hippocrate.vault.errors import KeyProviderError
from hippocrate.vault.providers.base import DocumentKey, HoldsDocumentKey, KeyProvider
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

    @cached_property
    def _key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_der_private_key(self._private, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 with SHA-256 over ``data``; the DER-encoded ``(r, s)``."""
        return self._key.sign(bytes(data), ec.ECDSA(hashes.SHA256()))


def _subject(issuer: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer} : signature des documents"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, issuer),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        ]
    )


def _new(issuer: str, now: datetime) -> DocumentSigningKey:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _subject(issuer)
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


# -- one key, whichever provider holds it ----------------------------------------------


@cache
def _file_key_at(path: Path, stamp: tuple[int, int]) -> DocumentSigningKey:
    return load_document_signing_key(path)


def document_signing_key(settings: Settings, provider: KeyProvider) -> DocumentKey:
    """The deployment's document signing key, wherever ``provider`` keeps it.

    A provider that holds the key itself (the HSM) gives it; otherwise it is the key
    file the settings name, read again when the file changes. ``KeyProviderError`` with
    a one-line reason when the key is missing or unusable.
    """
    if isinstance(provider, HoldsDocumentKey):
        return provider.document_key()
    path = settings.resolved_document_signing_key_file
    try:
        info = path.stat()
    except OSError:
        return load_document_signing_key(path)  # says what is wrong with the file
    return _file_key_at(path, (info.st_mtime_ns, info.st_size))


# -- a certificate for a key held elsewhere (the token) ----------------------------------


def token_certificate(
    public_point: bytes,
    sign: Callable[[bytes], bytes],
    *,
    issuer: str = "Hippocrate",
    now: datetime | None = None,
) -> bytes:
    """The self-signed certificate (DER) of the P-256 public key ``public_point``
    (uncompressed, ``04 || X || Y``), signed by ``sign`` (ECDSA P-256 SHA-256, DER) —
    the token holding the private key. Same subject, validity and usage as the file
    key's certificate. ``KeyProviderError`` if the result does not verify under
    ``public_point`` (a signer that is not that key's)."""
    moment = now or datetime.now(UTC)
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
    except ValueError:
        raise KeyProviderError("the document signing public key is not a P-256 point") from None
    name = asn1_x509.Name.load(_subject(issuer).public_bytes())
    spki = asn1_keys.PublicKeyInfo.load(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    algorithm = {"algorithm": "sha256_ecdsa"}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            # As x509.random_serial_number(): positive, at most 20 bytes.
            "serial_number": secrets.randbits(159) | 1,
            "signature": algorithm,
            "issuer": name,
            "validity": {
                "not_before": asn1_x509.Time({"utc_time": moment - timedelta(minutes=5)}),
                "not_after": asn1_x509.Time({"utc_time": moment + _VALIDITY}),
            },
            "subject": name,
            "subject_public_key_info": spki,
            "extensions": [
                {
                    "extn_id": "basic_constraints",
                    "critical": True,
                    "extn_value": {"ca": True, "path_len_constraint": 0},
                },
                {
                    "extn_id": "key_usage",
                    "critical": True,
                    "extn_value": {"digital_signature", "non_repudiation", "key_cert_sign"},
                },
            ],
        }
    )
    signature = sign(tbs.dump())
    der = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}
    ).dump()
    check_certificate(der, public_point)
    return bytes(der)


def check_certificate(der: bytes, public_point: bytes) -> None:
    """``KeyProviderError`` unless ``der`` is a self-signed certificate of
    ``public_point`` whose signature verifies."""
    try:
        certificate = x509.load_der_x509_certificate(der)
        public = certificate.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey) or public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ) != bytes(public_point):
            raise KeyProviderError("the document signing certificate names another key")
        public.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            ec.ECDSA(hashes.SHA256()),
        )
    except (ValueError, InvalidSignature):
        raise KeyProviderError(
            "the document signing certificate does not verify under its key"
        ) from None


def verify_document_signature(public_point: bytes, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` (DER) is ECDSA P-256 SHA-256 of ``data`` by ``public_point``."""
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_point)
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True
