"""The document signing key in a real SoftHSM2 token (skipped without SoftHSM2, failed in
CI): made inside it by init, never readable from it, allowed only to sign, its
certificate signed by the token and found by every process; a key or certificate that
is not what init makes is refused."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pkcs11
import pytest
from asn1crypto import x509 as asn1_x509
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import AttributeSensitive, KeyUnextractable
from pkcs11.types import Session, WrapMixin

from hippocrate.config import KeyProviderKind, Settings
from hippocrate.vault.documents import (
    create_document_signing_key,
    document_signing_key,
    load_document_signing_key,
    verify_document_signature,
)
from hippocrate.vault.errors import KeyProviderError
from hippocrate.vault.factory import open_provider
from hippocrate.vault.providers.base import DocumentKey, HoldsDocumentKey
from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider
from hippocrate.vault.signatures import verify_signature
from tests.softhsm import make_token, require_softhsm, unique_label

LABEL = "hippocrate-documents"
P256_OID = bytes.fromhex("06082a8648ce3d030107")  # DER of 1.2.840.10045.3.1.7
DOCUMENT = b"%PDF-1.7 signed attributes of a prescription"


class Token(NamedTuple):
    module: Path
    label: str
    pin: str


@pytest.fixture(scope="session")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_softhsm()
    return tmp_path_factory.mktemp("softhsm")


@pytest.fixture
def token(softhsm_dir: Path) -> Token:
    return Token(*make_token(softhsm_dir, label=unique_label()))


@pytest.fixture
def provider(token: Token) -> Iterator[Pkcs11KeyProvider]:
    opened = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    yield opened
    opened.close()


def _open(token: Token) -> Pkcs11KeyProvider:
    return Pkcs11KeyProvider(module=token.module, token_label=token.label, pin=token.pin)


@contextmanager
def token_session(token: Token) -> Iterator[Session]:
    """A session of our own on the token, as an operator with the user PIN would have."""
    library = pkcs11.lib(str(token.module))
    session = library.get_token(token_label=token.label).open(rw=True, user_pin=token.pin)
    try:
        yield session
    finally:
        session.close()


def _document_objects(session: Session) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.LABEL: LABEL}))


def _remove_document_key(token: Token) -> None:
    """Make the token look initialised before the document key existed."""
    with token_session(token) as session:
        objects = _document_objects(session)
        assert len(objects) == 3  # private key, public key, certificate
        for obj in objects:
            obj.destroy()


def _point(certificate: bytes) -> bytes:
    """The public point a certificate names (uncompressed, 65 bytes)."""
    info = asn1_x509.Certificate.load(certificate).public_key
    point: bytes = info["public_key"].native
    return point


def test_init_makes_a_key_that_never_leaves_the_token(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    key = provider.document_key()
    certificate = key.certificate
    provider.close()
    with token_session(token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=LABEL)
        assert private[Attribute.KEY_TYPE] == KeyType.EC
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.PRIVATE] is True
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.MODIFIABLE] is False
        # Allowed to sign, and to nothing else (no ECDH, no decryption, no unwrapping).
        assert private[Attribute.SIGN] is True
        for capability in (Attribute.DECRYPT, Attribute.UNWRAP, Attribute.DERIVE):
            assert private[capability] is False
        # The value cannot be read, nor wrapped out under a key the reader makes.
        with pytest.raises(AttributeSensitive):
            private[Attribute.VALUE]
        wrapping_key = session.generate_key(
            KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
        )
        assert isinstance(wrapping_key, WrapMixin)
        with pytest.raises(KeyUnextractable):
            wrapping_key.wrap_key(private)

        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=LABEL)
        assert public[Attribute.EC_PARAMS] == P256_OID
        assert public[Attribute.EC_POINT] == b"\x04\x41" + _point(certificate)
        stored = next(
            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: LABEL})
        )
        assert stored[Attribute.VALUE] == certificate


def test_the_certificate_is_the_file_keys_twin_signed_by_the_token(
    provider: Pkcs11KeyProvider, tmp_path: Path
) -> None:
    ours = asn1_x509.Certificate.load(provider.document_key().certificate)
    create_document_signing_key(tmp_path / "file.key")
    file_cert = asn1_x509.Certificate.load(
        load_document_signing_key(tmp_path / "file.key").certificate
    )

    assert ours.subject.dump() == file_cert.subject.dump()
    assert ours.issuer.dump() == ours.subject.dump()
    assert ours.key_usage_value.native == file_cert.key_usage_value.native
    assert ours.basic_constraints_value.native == file_cert.basic_constraints_value.native
    assert ours["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    assert ours.public_key.curve == ("named", "secp256r1")
    # Self-signed by the token key: its signature verifies under the key it names.
    point = _point(ours.dump())
    assert verify_document_signature(point, ours["tbs_certificate"].dump(), ours.signature)


def test_documents_are_signed_by_the_token(provider: Pkcs11KeyProvider) -> None:
    key = provider.document_key()
    assert isinstance(provider, HoldsDocumentKey)
    assert isinstance(key, DocumentKey)
    point = _point(key.certificate)

    signature = key.sign(DOCUMENT)

    assert verify_document_signature(point, DOCUMENT, signature)
    assert not verify_document_signature(point, DOCUMENT + b"!", signature)
    assert signature != key.sign(DOCUMENT)  # ECDSA: a fresh nonce each time


def test_the_settings_choose_the_token_and_refuse_a_key_file(
    token: Token, provider: Pkcs11KeyProvider, tmp_path: Path
) -> None:
    expected = provider.document_key().certificate
    provider.close()
    settings = Settings(
        data_dir=tmp_path,
        key_provider=KeyProviderKind.PKCS11,
        pkcs11_module=token.module,
        pkcs11_token=token.label,
        pkcs11_pin=token.pin,
        document_signing_key_file=None,
        audit_signing_key_file=None,
    )
    opened = open_provider(settings)
    try:
        assert document_signing_key(settings, opened).certificate == expected
    finally:
        opened.close()

    with_file = settings.model_copy(update={"document_signing_key_file": tmp_path / "k.key"})
    with pytest.raises(KeyProviderError) as refused:
        open_provider(with_file)
    message = str(refused.value)
    assert "\n" not in message
    assert "HIPPOCRATE_DOCUMENT_SIGNING_KEY_FILE" in message
    assert "in the token" in message


def test_another_token_has_another_key(softhsm_dir: Path) -> None:
    first, second = (Token(*make_token(softhsm_dir, label=unique_label())) for _ in range(2))
    ours = Pkcs11KeyProvider.initialise(module=first.module, token_label=first.label, pin="1234")
    theirs = Pkcs11KeyProvider.initialise(
        module=second.module, token_label=second.label, pin="1234"
    )
    try:
        signature = theirs.document_key().sign(DOCUMENT)
        assert ours.document_key().certificate != theirs.document_key().certificate
        assert not verify_document_signature(
            _point(ours.document_key().certificate), DOCUMENT, signature
        )
    finally:
        ours.close()
        theirs.close()


def test_init_adds_the_key_to_a_token_made_without_it(token: Token) -> None:
    Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin="1234").close()
    _remove_document_key(token)

    older = _open(token)
    try:
        audit = older.sign(DOCUMENT)  # everything else works
        assert verify_signature(older.signing_public_key(), DOCUMENT, audit)
        with pytest.raises(
            KeyProviderError, match="no document signing key; run 'hippocrate init'"
        ):
            older.document_key()

        # init in another process (the CLI beside a running server) adds it; this
        # process finds it at its next document, without reopening the token.
        _init_in_another_process(token)

        key = older.document_key()
        assert verify_document_signature(_point(key.certificate), DOCUMENT, key.sign(DOCUMENT))
    finally:
        older.close()

    again = Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin="1234")
    try:
        assert again.document_key().certificate == key.certificate  # init keeps it
    finally:
        again.close()
    with token_session(token) as session:
        assert len(_document_objects(session)) == 3


def _init_in_another_process(token: Token) -> None:
    script = (
        "import sys\n"
        "from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider\n"
        "Pkcs11KeyProvider.initialise(\n"
        "    module=sys.argv[1], token_label=sys.argv[2], pin=sys.argv[3]\n"
        ").close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(token.module), token.label, token.pin],
        check=True,
        timeout=60,
    )


def test_an_extractable_document_key_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    _remove_document_key(token)
    with token_session(token) as session:
        session.generate_keypair(
            KeyType.EC,
            label=LABEL,
            store=True,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.EC_PARAMS: P256_OID},
            private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    with pytest.raises(KeyProviderError, match=r"'hippocrate-documents'.*extractable"):
        Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin="1234")
    with pytest.raises(KeyProviderError, match=r"'hippocrate-documents'.*extractable"):
        _open(token)


def test_a_key_allowed_to_derive_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    _remove_document_key(token)
    with token_session(token) as session:
        session.generate_keypair(
            KeyType.EC,
            label=LABEL,
            store=True,
            mechanism=Mechanism.EC_KEY_PAIR_GEN,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY | MechanismFlag.DERIVE,
            public_template={Attribute.EC_PARAMS: P256_OID},
            private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
        )
    with pytest.raises(KeyProviderError, match="may do more than sign"):
        Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin="1234")


def test_a_certificate_of_another_key_is_refused(softhsm_dir: Path) -> None:
    ours, theirs = (Token(*make_token(softhsm_dir, label=unique_label())) for _ in range(2))
    for token in (ours, theirs):
        Pkcs11KeyProvider.initialise(
            module=token.module, token_label=token.label, pin="1234"
        ).close()
    with token_session(theirs) as session:
        foreign = next(
            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: LABEL})
        )[Attribute.VALUE]
    with token_session(ours) as session:
        certificate = next(
            session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: LABEL})
        )
        subject = certificate[Attribute.SUBJECT]
        certificate.destroy()
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: LABEL,
                Attribute.SUBJECT: subject,
                Attribute.VALUE: foreign,
            }
        )
    with pytest.raises(KeyProviderError, match="certificate names another key"):
        _open(ours)


def test_half_a_key_pair_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with token_session(token) as session:
        session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=LABEL).destroy()
    with pytest.raises(KeyProviderError, match="not one key pair with its certificate"):
        _open(token)
    # And init does not paper over it with a second private key.
    with pytest.raises(KeyProviderError, match="not one key pair with its certificate"):
        Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin="1234")


def test_concurrent_document_and_audit_signing(provider: Pkcs11KeyProvider) -> None:
    key = provider.document_key()
    point = _point(key.certificate)
    audit = provider.signing_public_key()

    def both(n: int) -> bool:
        data = f"document:{n}".encode()
        return verify_document_signature(point, data, key.sign(data)) and verify_signature(
            audit, data, provider.sign(data)
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(both, range(100)))


def test_a_closed_provider_refuses_to_sign_documents(provider: Pkcs11KeyProvider) -> None:
    key = provider.document_key()
    provider.close()
    with pytest.raises(KeyProviderError, match="is closed"):
        key.sign(DOCUMENT)
    with pytest.raises(KeyProviderError, match="is closed"):
        provider.document_key()


def test_the_key_is_not_printed_or_pickled(provider: Pkcs11KeyProvider) -> None:
    key = provider.document_key()
    assert "1234" not in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
