"""The scale-out provider: root keys held in a PKCS#11 token (an HSM; tested with SoftHSM2).

The token holds root key versions as AES-256 secret keys labelled ``hippocrate-root-<n>``
and the blind index key labelled ``hippocrate-index``; the audit signing key is an Ed25519
key pair labelled ``hippocrate-audit`` (a private key allowed only to sign, and its public
key); the document signing key (reports, prescriptions) is an ECDSA P-256 key pair labelled
``hippocrate-documents``, likewise allowed only to sign, with its self-signed X.509
certificate stored beside it as a certificate object of the same label (the token signed
it: ``vault/documents.py`` builds the TBSCertificate, the token signs it). Every key is
created inside the token, sensitive and not extractable: its value never reaches this
process. Wrapping a data key is AES-GCM computed by the token
(``C_Encrypt`` with ``CKM_AES_GCM``), with the same bytes on the wire as the file
provider: a 12-byte nonce, then ciphertext and the 128-bit tag, under the associated data
``hippocrate.wrap.v1\\x00`` + binding. Audit checkpoints are signed by the token
(``C_Sign`` with ``CKM_EDDSA``, pure Ed25519); documents by ``C_Sign`` with ``CKM_ECDSA``
over a SHA-256 digest computed here, the token's raw ``r || s`` returned DER-encoded.

A token initialised before the audit key or the document key existed still opens; it gets
them at the next ``hippocrate init`` (:meth:`Pkcs11KeyProvider.initialise`, or
:meth:`~Pkcs11KeyProvider.ensure_signing_key` for the audit key), and signing refuses
until then. A process that opened the token before the document key was added finds it at
its next document (:meth:`~Pkcs11KeyProvider.document_key` looks again).

One read-write session is opened at start, logged in with the user PIN, and shared by
every thread behind a lock. The PIN is not kept after login.

Guaranteed: a failure to open the token is a :class:`KeyProviderError` with a one-line
message, never a raw PKCS#11 exception; a key that turns out extractable or not sensitive
is refused, and so is an audit public key that does not verify its private key's
signatures, a document key that is not P-256 or may do more than sign, and a document
certificate that does not name the token's key or does not verify. Not guaranteed: that a
key with the right label was created by Hippocrate (anyone holding the user PIN can create
one, so guard the PIN as you would the keys).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import pkcs11
from asn1crypto.algos import DSASignature
from asn1crypto.x509 import Certificate
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    DataInvalid,
    DataLenRange,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    FunctionFailed,
    GeneralError,
    MultipleTokensReturned,
    NoSuchToken,
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    UserAlreadyLoggedIn,
)
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, Object, Session, SignMixin

from hippocrate.vault.documents import (
    check_certificate,
    token_certificate,
    verify_document_signature,
)
from hippocrate.vault.errors import DecryptionError, KeyProviderError, UnknownKeyVersion
from hippocrate.vault.providers.base import DocumentKey
from hippocrate.vault.signatures import verify_signature

_NONCE = 12
_TAG_BITS = 128
_WRAP_CONTEXT = b"hippocrate.wrap.v1\x00"
_ROOT_PREFIX = "hippocrate-root-"
_ROOT_LABEL = re.compile(r"hippocrate-root-([1-9][0-9]*)")
_INDEX_LABEL = "hippocrate-index"
_AUDIT_LABEL = "hippocrate-audit"
# CKA_EC_PARAMS of an Ed25519 key: the DER-encoded OID 1.3.101.112 (RFC 8410). PKCS#11 3.0
# also allows the printable string "edwards25519"; SoftHSM2 2.6 accepts both, and a key
# made elsewhere with either is accepted.
_ED25519_OID = bytes.fromhex("06032b6570")
_ED25519_NAME = bytes.fromhex("130c") + b"edwards25519"
_ED25519_PUBLIC = 32
_ED25519_SIGNATURE = 64
# Signed and verified at every open, to check the public key is the private key's half.
_AUDIT_PROBE = b"hippocrate.audit-key-probe.v1"
_DOCUMENT_LABEL = "hippocrate-documents"
_DOCUMENT_ID = b"hippocrate-documents"
# CKA_EC_PARAMS of a P-256 key: the DER-encoded OID 1.2.840.10045.3.1.7 (secp256r1).
_P256_OID = bytes.fromhex("06082a8648ce3d030107")
_P256_POINT = 65  # uncompressed: 04 || X || Y
_P256_SIGNATURE = 64  # CKM_ECDSA: r || s, 32 bytes each
_DOCUMENT_PROBE = b"hippocrate.document-key-probe.v1"

# SoftHSM2 answers a GCM tag mismatch with CKR_GENERAL_ERROR, other tokens with
# CKR_ENCRYPTED_DATA_INVALID or CKR_FUNCTION_FAILED: all of them mean "does not open".
_DOES_NOT_OPEN = (
    GeneralError,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    DataInvalid,
    DataLenRange,
    FunctionFailed,
)
_PIN_REJECTED = (PinIncorrect, PinInvalid, PinLenRange)

# Created in the token, never readable from it, attributes frozen.
_PROTECTED: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
}
_AUDIT_PUBLIC: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.MODIFIABLE: False,
    Attribute.EC_PARAMS: _ED25519_OID,
}
_DOCUMENT_PUBLIC: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.MODIFIABLE: False,
    Attribute.EC_PARAMS: _P256_OID,
    Attribute.ID: _DOCUMENT_ID,
}
# Allowed to sign and nothing else: no key agreement (ECDH), no decryption, no unwrapping.
_DOCUMENT_PRIVATE: dict[Attribute, Any] = {
    **_PROTECTED,
    Attribute.ID: _DOCUMENT_ID,
    Attribute.DERIVE: False,
}


class _AesKey(Protocol):
    """A token AES key that may encrypt and decrypt (its class is built at run time)."""

    def encrypt(self, data: bytes, **kwargs: Any) -> object: ...

    def decrypt(self, data: bytes, **kwargs: Any) -> object: ...


def _why(exc: PKCS11Error) -> str:
    """A one-line reason for a python-pkcs11 error (many carry no message at all)."""
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


#: How long the newest root key version is trusted before the token is searched again.
CURRENT_VERSION_TTL = 1.0


class Pkcs11KeyProvider:
    """Root keys and the index key held in a PKCS#11 token; they never leave it."""

    name = "pkcs11"

    def __init__(self, *, module: Path, token_label: str, pin: str) -> None:
        self._open(Path(module), token_label, pin, create=False)

    def __repr__(self) -> str:
        state = "closed" if self._session is None else f"versions={sorted(self._root)}"
        return (
            f"Pkcs11KeyProvider(module={str(self._module)!r}, token={self._token_label!r}, {state})"
        )

    def __reduce__(self) -> Any:
        raise TypeError("key providers cannot be pickled")

    # -- creation -------------------------------------------------------------------

    @classmethod
    def initialise(cls, *, module: Path, token_label: str, pin: str) -> Pkcs11KeyProvider:
        """Create root key version 1 and the index key in the token if absent (idempotent)."""
        provider = cls.__new__(cls)
        provider._open(Path(module), token_label, pin, create=True)
        return provider

    # -- opening --------------------------------------------------------------------

    def _open(self, module: Path, token_label: str, pin: str, *, create: bool) -> None:
        self._module = module
        self._token_label = token_label
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._root: dict[int, _AesKey] = {}
        #: The newest root key version, and when it was read from the token.
        self._current: tuple[int, float] | None = None
        self._index_key: SignMixin | None = None
        self._derived: dict[bytes, bytes] = {}
        self._audit_key: SignMixin | None = None
        self._audit_public: bytes | None = None
        self._document: _TokenDocumentKey | None = None

        if not module.is_file():
            raise KeyProviderError(f"PKCS#11 module {module} cannot be loaded: no such file")
        try:
            # An absolute path, so the dynamic loader never searches for the module.
            library = pkcs11.lib(str(module.absolute()))
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"PKCS#11 module {module} cannot be loaded ({_why(exc)})"
            ) from None
        try:
            token = library.get_token(token_label=token_label)
        except NoSuchToken:
            raise KeyProviderError(
                f"PKCS#11 token {token_label!r} not found in module {module}"
            ) from None
        except MultipleTokensReturned:
            raise KeyProviderError(
                f"several PKCS#11 tokens are labelled {token_label!r}; labels must be unique"
            ) from None
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"PKCS#11 token {token_label!r} cannot be listed ({_why(exc)})"
            ) from None
        try:
            self._session = token.open(rw=True, user_pin=pin)
        except _PIN_REJECTED:
            raise KeyProviderError(f"PIN rejected by token {token_label!r}") from None
        except PinLocked:
            raise KeyProviderError(
                f"PIN locked on token {token_label!r}; the security officer must unlock it"
            ) from None
        except PinExpired:
            raise KeyProviderError(f"PIN expired on token {token_label!r}; change it") from None
        except UserAlreadyLoggedIn:
            # PKCS#11 logins are per process and token: a second login cannot check the
            # PIN, and closing either session would log the other out.
            raise KeyProviderError(
                f"token {token_label!r} is already open in this process; "
                "use one Pkcs11KeyProvider per token"
            ) from None
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"PKCS#11 token {token_label!r} cannot be opened ({_why(exc)})"
            ) from None
        try:
            if create:
                self._create_missing()
            self._load()
        except BaseException:
            self.close()
            raise

    def _create_missing(self) -> None:
        session = self._live_session()
        try:
            if not self._find_root_keys():
                self._generate_root(1)
            if not list(self._find(_INDEX_LABEL)):
                session.generate_key(
                    KeyType.GENERIC_SECRET,
                    256,
                    label=_INDEX_LABEL,
                    store=True,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    template=_PROTECTED,
                )
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} refused to create the keys ({_why(exc)})"
            ) from None
        self._create_audit_key_if_absent()
        self._create_document_key_if_absent()

    def _create_audit_key_if_absent(self) -> None:
        """Generate the audit key pair in the token unless either half is there.

        A half that is there alone is left for :meth:`_load_audit_key` to refuse.
        """
        try:
            private, public = self._find_audit_halves()
            if private or public:
                return
            self._live_session().generate_keypair(
                KeyType.EC_EDWARDS,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                label=_AUDIT_LABEL,
                store=True,
                # SIGN on the private key, VERIFY on the public one; nothing else.
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template=_AUDIT_PUBLIC,
                private_template=_PROTECTED,
            )
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} refused to create the audit signing key ({_why(exc)})"
            ) from None

    def _load(self) -> None:
        """Read the root keys and the index key from the token; refuse exposed ones."""
        try:
            root = self._find_root_keys()
            index = list(self._find(_INDEX_LABEL))
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} cannot be searched ({_why(exc)})"
            ) from None
        if not root:
            raise KeyProviderError(
                f"token {self._token_label!r} holds no root key; run 'hippocrate init'"
            )
        if not index:
            raise KeyProviderError(
                f"token {self._token_label!r} holds no index key; run 'hippocrate init'"
            )
        if len(index) > 1:
            raise KeyProviderError(
                f"token {self._token_label!r} holds several keys labelled {_INDEX_LABEL!r}"
            )
        index_key = index[0]
        self._check_protected(index_key, _INDEX_LABEL)
        if not isinstance(index_key, SignMixin):
            raise KeyProviderError(
                f"key {_INDEX_LABEL!r} in token {self._token_label!r} is not allowed to sign"
            )
        self._root = root
        self._index_key = index_key
        self._load_audit_key()
        self._load_document_key()

    def _find_audit_halves(self) -> tuple[list[Object], list[Object]]:
        session = self._live_session()
        halves: list[list[Object]] = []
        for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            halves.append(
                list(
                    session.get_objects(
                        {
                            Attribute.CLASS: object_class,
                            Attribute.TOKEN: True,
                            Attribute.LABEL: _AUDIT_LABEL,
                        }
                    )
                )
            )
        return halves[0], halves[1]

    def _load_audit_key(self) -> None:
        """Read the audit key pair; absent is allowed (a token from before it existed)."""
        self._audit_key = None
        self._audit_public = None
        try:
            private, public = self._find_audit_halves()
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} cannot be searched ({_why(exc)})"
            ) from None
        if not private and not public:
            return
        where = f"audit signing key {_AUDIT_LABEL!r} in token {self._token_label!r}"
        if len(private) != 1 or len(public) != 1:
            raise KeyProviderError(
                f"{where} is not one key pair ({len(private)} private key(s), "
                f"{len(public)} public key(s))"
            )
        key, public_key = private[0], public[0]
        try:
            if (
                key[Attribute.KEY_TYPE] != KeyType.EC_EDWARDS
                or public_key[Attribute.KEY_TYPE] != KeyType.EC_EDWARDS
                or public_key[Attribute.EC_PARAMS] not in (_ED25519_OID, _ED25519_NAME)
            ):
                raise KeyProviderError(f"{where} is not an Ed25519 key pair")
            self._check_protected(key, _AUDIT_LABEL)
            if not isinstance(key, SignMixin):
                raise KeyProviderError(f"{where} is not allowed to sign")
            raw = _raw_ed25519_point(public_key[Attribute.EC_POINT])
            if raw is None:
                raise KeyProviderError(f"{where} has a malformed public key")
            probe = key.sign(_AUDIT_PROBE, mechanism=Mechanism.EDDSA)
        except PKCS11Error as exc:
            raise KeyProviderError(f"{where} cannot be read ({_why(exc)})") from None
        if not verify_signature(raw, _AUDIT_PROBE, probe):
            raise KeyProviderError(f"{where}: the public key does not match the private key")
        self._audit_key = key
        self._audit_public = raw

    # -- the document signing key ------------------------------------------------------

    def _find_document_objects(self) -> tuple[list[Object], list[Object], list[Object]]:
        session = self._live_session()
        found: list[list[Object]] = []
        for object_class in (
            ObjectClass.PRIVATE_KEY,
            ObjectClass.PUBLIC_KEY,
            ObjectClass.CERTIFICATE,
        ):
            found.append(
                list(
                    session.get_objects(
                        {
                            Attribute.CLASS: object_class,
                            Attribute.TOKEN: True,
                            Attribute.LABEL: _DOCUMENT_LABEL,
                        }
                    )
                )
            )
        return found[0], found[1], found[2]

    def _create_document_key_if_absent(self) -> None:
        """Generate the document key pair in the token unless either half is there, then
        its certificate unless it is there (so a key pair left without one by an
        interrupted init gets it). A half alone is left for the load to refuse."""
        where = f"token {self._token_label!r}"
        try:
            private, public, certificates = self._find_document_objects()
            if not private and not public:
                self._live_session().generate_keypair(
                    KeyType.EC,
                    mechanism=Mechanism.EC_KEY_PAIR_GEN,
                    label=_DOCUMENT_LABEL,
                    store=True,
                    # SIGN on the private key, VERIFY on the public one; nothing else.
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    public_template=_DOCUMENT_PUBLIC,
                    private_template=_DOCUMENT_PRIVATE,
                )
                private, public, certificates = self._find_document_objects()
            if certificates or len(private) != 1 or len(public) != 1:
                return
            key, point = self._document_pair(private[0], public[0])
            certificate = token_certificate(point, lambda data: _ecdsa_der(key, data))
            self._live_session().create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.LABEL: _DOCUMENT_LABEL,
                    Attribute.ID: _DOCUMENT_ID,
                    Attribute.SUBJECT: Certificate.load(certificate).subject.dump(),
                    Attribute.VALUE: certificate,
                }
            )
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"{where} refused to create the document signing key ({_why(exc)})"
            ) from None

    def _document_pair(self, key: Object, public_key: Object) -> tuple[SignMixin, bytes]:
        """The private key and the raw public point of a document key pair, checked:
        P-256, protected, allowed only to sign. Raises PKCS11Error on a read failure."""
        where = f"document signing key {_DOCUMENT_LABEL!r} in token {self._token_label!r}"
        if (
            key[Attribute.KEY_TYPE] != KeyType.EC
            or public_key[Attribute.KEY_TYPE] != KeyType.EC
            or public_key[Attribute.EC_PARAMS] != _P256_OID
        ):
            raise KeyProviderError(f"{where} is not an ECDSA P-256 key pair")
        self._check_protected(key, _DOCUMENT_LABEL)
        if not isinstance(key, SignMixin) or not key[Attribute.SIGN]:
            raise KeyProviderError(f"{where} is not allowed to sign")
        if any(
            key[attribute] for attribute in (Attribute.DERIVE, Attribute.DECRYPT, Attribute.UNWRAP)
        ):
            raise KeyProviderError(f"{where} may do more than sign; refusing to use it")
        point = _raw_p256_point(public_key[Attribute.EC_POINT])
        if point is None:
            raise KeyProviderError(f"{where} has a malformed public key")
        return key, point

    def _load_document_key(self) -> None:
        """Read the document key pair and its certificate; absent is allowed (a token
        from before it existed). The caller holds the lock, or is opening."""
        self._document = None
        where = f"document signing key {_DOCUMENT_LABEL!r} in token {self._token_label!r}"
        try:
            private, public, certificates = self._find_document_objects()
            if not private and not public and not certificates:
                return
            if len(private) != 1 or len(public) != 1:
                raise KeyProviderError(
                    f"{where} is not one key pair with its certificate ({len(private)} "
                    f"private key(s), {len(public)} public key(s), {len(certificates)} "
                    "certificate(s))"
                )
            key, point = self._document_pair(private[0], public[0])
            if len(certificates) != 1:
                raise KeyProviderError(
                    f"{where} has {len(certificates)} certificates, not one; "
                    + ("run 'hippocrate init'" if not certificates else "remove the extra ones")
                )
            certificate = certificates[0][Attribute.VALUE]
            probe = _ecdsa_der(key, _DOCUMENT_PROBE)
        except PKCS11Error as exc:
            raise KeyProviderError(f"{where} cannot be read ({_why(exc)})") from None
        if not isinstance(certificate, bytes):
            raise KeyProviderError(f"{where} has a malformed certificate")
        check_certificate(certificate, point)
        if not verify_document_signature(point, _DOCUMENT_PROBE, probe):
            raise KeyProviderError(f"{where}: the public key does not match the private key")
        self._document = _TokenDocumentKey(certificate, key, self)

    def document_key(self) -> DocumentKey:
        """The document signing key held by the token. Looked for again when this
        process has not found it yet (``hippocrate init`` may have added it since)."""
        with self._lock:
            self._live_session()
            if self._document is None:
                self._load_document_key()
            if self._document is None:
                raise KeyProviderError(
                    f"token {self._token_label!r} holds no document signing key; "
                    "run 'hippocrate init'"
                )
            return self._document

    def _sign_document(self, key: SignMixin, data: bytes) -> bytes:
        with self._lock:
            if self._document is None or self._document._key is not key:
                raise KeyProviderError(f"key provider for token {self._token_label!r} is closed")
            try:
                return _ecdsa_der(key, data)
            except PKCS11Error as exc:
                raise KeyProviderError(
                    f"token {self._token_label!r} failed to sign a document ({_why(exc)})"
                ) from None

    def _find(self, label: str) -> list[Object]:
        session = self._live_session()
        return list(
            session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.TOKEN: True,
                    Attribute.LABEL: label,
                }
            )
        )

    def _find_root_keys(self) -> dict[int, _AesKey]:
        session = self._live_session()
        found: dict[int, _AesKey] = {}
        # Finish the search (C_FindObjectsFinal) before raising about any key found.
        candidates = list(
            session.get_objects(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.TOKEN: True,
                }
            )
        )
        for key in candidates:
            label = key[Attribute.LABEL]
            match = _ROOT_LABEL.fullmatch(label) if isinstance(label, str) else None
            if match is None:
                continue
            version = int(match.group(1))
            if version in found:
                raise KeyProviderError(
                    f"token {self._token_label!r} holds several keys labelled {label!r}"
                )
            self._check_protected(key, label)
            if key[Attribute.VALUE_LEN] != 32:
                raise KeyProviderError(
                    f"root key {label!r} in token {self._token_label!r} is not AES-256"
                )
            if not (isinstance(key, EncryptMixin) and isinstance(key, DecryptMixin)):
                raise KeyProviderError(
                    f"root key {label!r} in token {self._token_label!r} "
                    "is not allowed to encrypt and decrypt"
                )
            found[version] = cast(_AesKey, key)
        return found

    def _check_protected(self, key: Object, label: str) -> None:
        if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            raise KeyProviderError(
                f"key {label!r} in token {self._token_label!r} is extractable or not "
                "sensitive; refusing to use it"
            )

    def _generate_root(self, version: int) -> None:
        self._live_session().generate_key(
            KeyType.AES,
            256,
            label=f"{_ROOT_PREFIX}{version}",
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template=_PROTECTED,
        )

    def _live_session(self) -> Session:
        if self._session is None:
            raise KeyProviderError(f"key provider for token {self._token_label!r} is closed")
        return self._session

    # -- KeyProvider ------------------------------------------------------------------

    def current_version(self) -> int:
        """The newest root key version in the token, read again from it at most once a
        second (:data:`CURRENT_VERSION_TTL`): a version another process created
        (``hippocrate keys rotate``) is used from then on. The search costs some 300 µs
        on SoftHSM2 and was made for every new data key, ten times the wrap itself; a
        key made in the second after a rotation is wrapped under the former version,
        which the rotation's next pass rewraps (and ``keys retire`` refuses to destroy a
        version that still wraps a key)."""
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._current[1] > CURRENT_VERSION_TTL:
                self._rescan()
                if not self._root:
                    raise KeyProviderError(f"token {self._token_label!r} holds no root key")
                self._current = (max(self._root), now)
            return self._current[0]

    def versions(self) -> list[int]:
        """Every root key version in the token, read again from it (another process may
        have rotated)."""
        with self._lock:
            self._rescan()
            return sorted(self._root)

    def create_version(self, version: int) -> None:
        """Create ``hippocrate-root-<version>`` in the token if absent.

        Idempotent within a token; two processes creating the same version at the same
        instant may both succeed, and the provider then refuses the duplicate label.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"root key version must be a positive integer, not {version!r}")
        with self._lock:
            self._rescan()
            if version in self._root:
                return
            try:
                self._generate_root(version)
            except PKCS11Error as exc:
                raise KeyProviderError(
                    f"token {self._token_label!r} refused to create root key version "
                    f"{version} ({_why(exc)})"
                ) from None
            self._rescan()

    def retire_version(self, version: int) -> None:
        """Destroy the token object ``hippocrate-root-<version>``.

        Refuses the newest version and a version the token does not hold. What was
        wrapped under it can never be unwrapped again, by any process: the caller
        (``keyring.rotation.retire_root``) checks that nothing is."""
        with self._lock:
            self._rescan()
            key = self._root.get(version)
            if key is None:
                raise UnknownKeyVersion(
                    f"root key version {version} is not in token {self._token_label!r}"
                )
            if version == max(self._root):
                raise KeyProviderError(
                    f"root key version {version} is the current one; it cannot be retired"
                )
            try:
                cast(Object, key).destroy()
            except PKCS11Error as exc:
                raise KeyProviderError(
                    f"token {self._token_label!r} refused to destroy root key version "
                    f"{version} ({_why(exc)})"
                ) from None
            self._rescan()

    def _rescan(self) -> None:
        """Re-read the root keys; the caller holds the lock."""
        self._live_session()
        try:
            root = self._find_root_keys()
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} cannot be searched ({_why(exc)})"
            ) from None
        self._root = root
        self._current = (max(root), time.monotonic()) if root else None

    def _root_key(self, version: int) -> _AesKey:
        """The caller holds the lock."""
        self._live_session()
        if version not in self._root:
            self._rescan()
        try:
            return self._root[version]
        except KeyError:
            raise UnknownKeyVersion(
                f"root key version {version} is not in token {self._token_label!r}"
            ) from None

    def wrap(self, version: int, key: bytes, binding: bytes) -> bytes:
        """AES-256-GCM of ``key`` inside the token; a fresh random nonce per call."""
        with self._lock:
            return self._wrap(self._root_key(version), version, key, binding)

    def wrap_many(self, version: int, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """:meth:`wrap` of each item, under one hold of the session and one look-up of
        the root key. Each key is still encrypted by the token on its own (PKCS#11 has
        no call that encrypts several messages with a nonce and associated data each),
        so the token's work is the same; what a batch saves is the provider's."""
        with self._lock:
            root = self._root_key(version)
            return [self._wrap(root, version, key, binding) for key, binding in items]

    def _wrap(self, root: _AesKey, version: int, key: bytes, binding: bytes) -> bytes:
        """The caller holds the lock."""
        nonce = os.urandom(_NONCE)
        params = GCMParams(nonce, _WRAP_CONTEXT + binding, _TAG_BITS)
        try:
            sealed = root.encrypt(bytes(key), mechanism=Mechanism.AES_GCM, mechanism_param=params)
        except PKCS11Error as exc:
            raise KeyProviderError(
                f"token {self._token_label!r} failed to wrap with root key version "
                f"{version} ({_why(exc)})"
            ) from None
        if not isinstance(sealed, bytes) or len(sealed) != len(key) + _TAG_BITS // 8:
            raise KeyProviderError(f"token {self._token_label!r} returned a malformed wrap")
        return nonce + sealed

    def unwrap(self, version: int, wrapped: bytes, binding: bytes) -> bytes:
        """Reverse :meth:`wrap` inside the token; every failure is a ``DecryptionError``."""
        with self._lock:
            root = self._root_key(version)
            if len(wrapped) < _NONCE + _TAG_BITS // 8:
                raise DecryptionError("wrapped key is truncated")
            params = GCMParams(bytes(wrapped[:_NONCE]), _WRAP_CONTEXT + binding, _TAG_BITS)
            try:
                key = root.decrypt(
                    bytes(wrapped[_NONCE:]), mechanism=Mechanism.AES_GCM, mechanism_param=params
                )
            except _DOES_NOT_OPEN:
                raise DecryptionError(
                    "wrapped key does not open: wrong owner, wrong version or tampered"
                ) from None
            except PKCS11Error as exc:
                raise DecryptionError(
                    f"token {self._token_label!r} could not unwrap the key ({_why(exc)})"
                ) from None
        if not isinstance(key, bytes):
            raise DecryptionError("token returned a malformed unwrapped key")
        return key

    def derive_index_key(self, purpose: bytes) -> bytes:
        """HMAC-SHA256 of ``purpose`` under the index key, computed by the token.

        Deterministic, so each result is kept in memory for the provider's lifetime.
        """
        purpose = bytes(purpose)
        with self._lock:
            self._live_session()
            cached = self._derived.get(purpose)
            if cached is not None:
                return cached
            assert self._index_key is not None
            try:
                derived = self._index_key.sign(purpose, mechanism=Mechanism.SHA256_HMAC)
            except PKCS11Error as exc:
                raise KeyProviderError(
                    f"token {self._token_label!r} failed to derive an index key ({_why(exc)})"
                ) from None
            if len(derived) != 32:
                raise KeyProviderError(
                    f"token {self._token_label!r} returned a {len(derived)}-byte HMAC"
                )
            self._derived[purpose] = derived
            return derived

    def ensure_signing_key(self) -> None:
        """Create the audit signing key pair in a token made before it existed (idempotent)."""
        with self._lock:
            self._live_session()
            if self._audit_key is not None:
                return
            # Another process may have created it since this one opened the token.
            self._create_audit_key_if_absent()
            self._load_audit_key()

    def _signer(self) -> SignMixin:
        """The caller holds the lock."""
        self._live_session()
        if self._audit_key is None:
            raise KeyProviderError(
                f"token {self._token_label!r} holds no audit signing key; run 'hippocrate init'"
            )
        return self._audit_key

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of ``data`` by the audit signing key, computed by the token."""
        data = bytes(data)
        with self._lock:
            signer = self._signer()
            try:
                signature = signer.sign(data, mechanism=Mechanism.EDDSA)
            except PKCS11Error as exc:
                raise KeyProviderError(
                    f"token {self._token_label!r} failed to sign ({_why(exc)})"
                ) from None
        if len(signature) != _ED25519_SIGNATURE:
            raise KeyProviderError(
                f"token {self._token_label!r} returned a {len(signature)}-byte signature"
            )
        return signature

    def signing_public_key(self) -> bytes:
        """The audit key's raw 32-byte Ed25519 public key (read from the token at open)."""
        with self._lock:
            self._signer()
            assert self._audit_public is not None
            return self._audit_public

    def close(self) -> None:
        """Close the session (which logs out); later calls raise ``KeyProviderError``.

        The module stays loaded: python-pkcs11 shares it with every other user in the
        process.
        """
        with self._lock:
            session, self._session = self._session, None
            self._root = {}
            self._current = None
            self._index_key = None
            self._derived = {}
            self._audit_key = None
            self._audit_public = None
            self._document = None
        if session is not None:
            # A token that is gone or a finalised module leaves nothing to release.
            with contextlib.suppress(PKCS11Error):
                session.close()


def _raw_ed25519_point(point: object) -> bytes | None:
    """The 32 raw bytes of an Ed25519 CKA_EC_POINT, or None when malformed.

    PKCS#11 has tokens store it as a DER OCTET STRING (``04 20`` + 32 bytes), as SoftHSM2
    does; some store the 32 bytes bare.
    """
    if not isinstance(point, bytes):
        return None
    if len(point) == 2 + _ED25519_PUBLIC and point[:2] == bytes((0x04, _ED25519_PUBLIC)):
        return point[2:]
    if len(point) == _ED25519_PUBLIC:
        return point
    return None


def _raw_p256_point(point: object) -> bytes | None:
    """The uncompressed P-256 point of a CKA_EC_POINT (a DER OCTET STRING, ``04 41`` +
    65 bytes, as PKCS#11 says and SoftHSM2 does; or the 65 bytes bare), or None."""
    if not isinstance(point, bytes):
        return None
    if len(point) == 2 + _P256_POINT and point[:2] == bytes((0x04, _P256_POINT)):
        point = point[2:]
    if len(point) == _P256_POINT and point[0] == 0x04:
        return point
    return None


def _ecdsa_der(key: SignMixin, data: bytes) -> bytes:
    """ECDSA P-256 SHA-256 of ``data`` by the token key: the digest is computed here,
    the token signs it (``CKM_ECDSA``), and its raw ``r || s`` becomes the DER that
    CMS and X.509 carry."""
    digest = hashlib.sha256(bytes(data)).digest()
    raw = key.sign(digest, mechanism=Mechanism.ECDSA)
    if not isinstance(raw, bytes) or len(raw) != _P256_SIGNATURE:
        raise KeyProviderError("the token returned a malformed ECDSA signature")
    return bytes(DSASignature.from_p1363(raw).dump())


class _TokenDocumentKey:
    """The document key as :class:`~hippocrate.vault.providers.base.DocumentKey`: its
    certificate, and signatures made by the token under the provider's session lock."""

    __slots__ = ("_certificate", "_key", "_provider")

    def __init__(self, certificate: bytes, key: SignMixin, provider: Pkcs11KeyProvider) -> None:
        self._certificate = certificate
        self._key = key
        self._provider = provider

    def __repr__(self) -> str:
        return f"TokenDocumentKey(token={self._provider._token_label!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a document signing key is not pickled")

    @property
    def certificate(self) -> bytes:
        return self._certificate

    def sign(self, data: bytes) -> bytes:
        return self._provider._sign_document(self._key, data)
