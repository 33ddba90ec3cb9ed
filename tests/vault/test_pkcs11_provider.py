"""Pkcs11KeyProvider against a real SoftHSM2 token (skipped without SoftHSM2, failed in CI)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import AttributeSensitive, KeyUnextractable
from pkcs11.types import Session, WrapMixin

from hippocrate.vault.errors import DecryptionError, KeyProviderError, UnknownKeyVersion
from hippocrate.vault.providers.base import KeyProvider
from hippocrate.vault.providers.pkcs11 import CURRENT_VERSION_TTL, Pkcs11KeyProvider
from hippocrate.vault.signatures import verify_signature
from tests.softhsm import make_token, require_softhsm, unique_label

BINDING = b"patient:42|dek:1"
AUDIT = "hippocrate-audit"
ED25519_OID = bytes.fromhex("06032b6570")  # DER of 1.3.101.112
CHECKPOINT = b"checkpoint|seq=17|hash=" + bytes(range(32))


class Token(NamedTuple):
    module: Path
    label: str
    pin: str


@pytest.fixture(scope="session")
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_softhsm()
    return tmp_path_factory.mktemp("softhsm")


def _new_token(softhsm_dir: Path, pin: str = "1234") -> Token:
    return Token(*make_token(softhsm_dir, label=unique_label(), pin=pin))


@pytest.fixture
def token(softhsm_dir: Path) -> Token:
    return _new_token(softhsm_dir)


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


def _labels(session: Session) -> list[str]:
    return sorted(
        key[Attribute.LABEL]
        for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
    )


# -- initialise -------------------------------------------------------------------------


def test_provider_implements_the_protocol(provider: Pkcs11KeyProvider) -> None:
    assert isinstance(provider, KeyProvider)
    assert provider.name == "pkcs11"
    assert provider.versions() == [1]
    assert provider.current_version() == 1


def test_initialise_is_idempotent(token: Token) -> None:
    first = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    data_key = os.urandom(32)
    wrapped = first.wrap(1, data_key, BINDING)
    index = first.derive_index_key(b"email")
    first.close()

    again = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    try:
        assert again.versions() == [1]
        # Same root key and index key: nothing was regenerated.
        assert again.unwrap(1, wrapped, BINDING) == data_key
        assert again.derive_index_key(b"email") == index
    finally:
        again.close()

    with token_session(token) as session:
        assert _labels(session) == ["hippocrate-index", "hippocrate-root-1"]


# -- wrap / unwrap ----------------------------------------------------------------------


def test_wrap_unwrap_round_trip(provider: Pkcs11KeyProvider) -> None:
    data_key = os.urandom(32)
    wrapped = provider.wrap(1, data_key, BINDING)
    assert len(wrapped) == 12 + 32 + 16
    assert data_key not in wrapped
    assert provider.unwrap(1, wrapped, BINDING) == data_key
    # A fresh nonce every time.
    assert provider.wrap(1, data_key, BINDING) != wrapped


def test_a_batch_wrap_in_the_token_binds_each_key_to_its_own_binding(
    provider: Pkcs11KeyProvider,
) -> None:
    keys = [os.urandom(32) for _ in range(3)]
    bindings = [b"patient:1|dek:1", b"patient:2|dek:1", b"patient:3|dek:1"]
    wrapped = provider.wrap_many(1, list(zip(keys, bindings, strict=True)))
    assert [len(w) for w in wrapped] == [60, 60, 60]
    assert len({w[:12] for w in wrapped}) == 3
    for key, binding, blob in zip(keys, bindings, wrapped, strict=True):
        assert key not in blob
        assert provider.unwrap(1, blob, binding) == key
    with pytest.raises(DecryptionError, match="does not open"):
        provider.unwrap(1, wrapped[0], bindings[1])
    with pytest.raises(UnknownKeyVersion):
        provider.wrap_many(7, [(keys[0], bindings[0])])


def test_unwrap_with_another_binding_fails(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(1, os.urandom(32), BINDING)
    with pytest.raises(DecryptionError, match="does not open"):
        provider.unwrap(1, wrapped, b"patient:43|dek:1")
    with pytest.raises(DecryptionError):
        provider.unwrap(1, wrapped, b"")


@pytest.mark.parametrize("position", [0, 11, 12, 43, 44, 59], ids=lambda p: f"byte{p}")
def test_a_flipped_bit_fails(provider: Pkcs11KeyProvider, position: int) -> None:
    wrapped = bytearray(provider.wrap(1, os.urandom(32), BINDING))
    assert len(wrapped) == 60  # nonce 0-11, ciphertext 12-43, tag 44-59
    wrapped[position] ^= 0x01
    with pytest.raises(DecryptionError, match="does not open"):
        provider.unwrap(1, bytes(wrapped), BINDING)


@pytest.mark.parametrize("length", [0, 12, 27, 28, 59])
def test_a_truncated_wrap_fails(provider: Pkcs11KeyProvider, length: int) -> None:
    wrapped = provider.wrap(1, os.urandom(32), BINDING)
    with pytest.raises(DecryptionError):
        provider.unwrap(1, wrapped[:length], BINDING)


def test_the_provider_still_works_after_failures(provider: Pkcs11KeyProvider) -> None:
    data_key = os.urandom(32)
    wrapped = provider.wrap(1, data_key, BINDING)
    for _ in range(3):
        with pytest.raises(DecryptionError):
            provider.unwrap(1, wrapped, b"other")
    assert provider.unwrap(1, wrapped, BINDING) == data_key


def test_unknown_version(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(1, os.urandom(32), BINDING)
    with pytest.raises(UnknownKeyVersion, match="version 7"):
        provider.unwrap(7, wrapped, BINDING)
    with pytest.raises(UnknownKeyVersion):
        provider.wrap(7, os.urandom(32), BINDING)


def test_new_version_wraps_and_old_wraps_still_open(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    data_key = os.urandom(32)
    wrapped_v1 = provider.wrap(1, data_key, BINDING)

    provider.create_version(2)
    provider.create_version(2)  # idempotent
    assert provider.versions() == [1, 2]
    assert provider.current_version() == 2

    wrapped_v2 = provider.wrap(2, data_key, BINDING)
    assert provider.unwrap(2, wrapped_v2, BINDING) == data_key
    assert provider.unwrap(1, wrapped_v1, BINDING) == data_key
    # Each version is its own key.
    with pytest.raises(DecryptionError):
        provider.unwrap(1, wrapped_v2, BINDING)
    with pytest.raises(DecryptionError):
        provider.unwrap(2, wrapped_v1, BINDING)
    provider.close()

    # The new version lives in the token, not in the provider.
    reopened = _open(token)
    try:
        assert reopened.versions() == [1, 2]
        assert reopened.current_version() == 2
        assert reopened.unwrap(1, wrapped_v1, BINDING) == data_key
        assert reopened.unwrap(2, wrapped_v2, BINDING) == data_key
    finally:
        reopened.close()


def test_create_version_refuses_nonsense(provider: Pkcs11KeyProvider) -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="version"):
            provider.create_version(bad)
    assert provider.versions() == [1]


def test_concurrent_use_of_the_shared_session(provider: Pkcs11KeyProvider) -> None:
    def round_trip(n: int) -> bool:
        data_key = os.urandom(32)
        binding = f"patient:{n}".encode()
        wrapped = provider.wrap(1, data_key, binding)
        return (
            provider.unwrap(1, wrapped, binding) == data_key
            and len(provider.derive_index_key(binding)) == 32
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(round_trip, range(200)))


# -- the keys never leave the token --------------------------------------------------------


def test_root_and_index_keys_are_not_extractable(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with token_session(token) as session:
        for label in ("hippocrate-root-1", "hippocrate-index"):
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            assert key[Attribute.TOKEN] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.ALWAYS_SENSITIVE] is True
            with pytest.raises(AttributeSensitive):
                key[Attribute.VALUE]

        root = session.get_key(object_class=ObjectClass.SECRET_KEY, label="hippocrate-root-1")
        assert root[Attribute.KEY_TYPE] == KeyType.AES
        assert root[Attribute.VALUE_LEN] == 32
        # Nor can it be exported wrapped under a key the attacker chose.
        wrapping_key = session.generate_key(
            KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
        )
        assert isinstance(wrapping_key, WrapMixin)
        with pytest.raises(KeyUnextractable):
            wrapping_key.wrap_key(root)


def test_an_extractable_root_key_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with token_session(token) as session:
        session.generate_key(
            KeyType.AES,
            256,
            label="hippocrate-root-2",
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    with pytest.raises(KeyProviderError, match=r"'hippocrate-root-2'.*extractable"):
        _open(token)


# -- index keys -------------------------------------------------------------------------


def test_derive_index_key(provider: Pkcs11KeyProvider) -> None:
    email = provider.derive_index_key(b"patient.email")
    assert len(email) == 32
    assert provider.derive_index_key(b"patient.email") == email
    assert provider.derive_index_key(b"patient.nir") != email
    assert provider.derive_index_key(b"") != email


def test_derive_index_key_is_per_token(softhsm_dir: Path) -> None:
    # Both tokens first: creating a token re-initialises the module (see tests/softhsm.py).
    first_token, second_token = _new_token(softhsm_dir), _new_token(softhsm_dir)
    first = Pkcs11KeyProvider.initialise(
        module=first_token.module, token_label=first_token.label, pin=first_token.pin
    )
    second = Pkcs11KeyProvider.initialise(
        module=second_token.module, token_label=second_token.label, pin=second_token.pin
    )
    try:
        purpose = b"patient.email"
        assert first.derive_index_key(purpose) != second.derive_index_key(purpose)
        # And each token's root key is its own.
        wrapped = first.wrap(1, os.urandom(32), BINDING)
        with pytest.raises(DecryptionError):
            second.unwrap(1, wrapped, BINDING)
    finally:
        first.close()
        second.close()


def test_derived_index_keys_survive_a_restart(token: Token, provider: Pkcs11KeyProvider) -> None:
    before = provider.derive_index_key(b"patient.phone")
    provider.close()
    reopened = _open(token)
    try:
        assert reopened.derive_index_key(b"patient.phone") == before
    finally:
        reopened.close()


# -- opening fails closed -----------------------------------------------------------------


def test_wrong_pin(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with pytest.raises(KeyProviderError, match="PIN rejected by token"):
        Pkcs11KeyProvider(module=token.module, token_label=token.label, pin="0000")


def test_missing_module(token: Token, tmp_path: Path) -> None:
    missing = tmp_path / "libnothere.so"
    with pytest.raises(KeyProviderError, match=r"PKCS#11 module .* cannot be loaded"):
        Pkcs11KeyProvider(module=missing, token_label=token.label, pin=token.pin)


def test_a_file_that_is_not_a_module(token: Token, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.so"
    bogus.write_bytes(b"not an ELF file")
    with pytest.raises(KeyProviderError, match=r"PKCS#11 module .* cannot be loaded"):
        Pkcs11KeyProvider(module=bogus, token_label=token.label, pin=token.pin)


def test_unknown_token_label(token: Token) -> None:
    with pytest.raises(KeyProviderError, match="token 'no-such-token' not found"):
        Pkcs11KeyProvider(module=token.module, token_label="no-such-token", pin=token.pin)


def test_token_not_initialised(token: Token) -> None:
    with pytest.raises(KeyProviderError, match="no root key; run 'hippocrate init'"):
        _open(token)
    # The failed attempt logged out: init can follow in the same process.
    initialised = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    initialised.close()
    _open(token).close()


def test_a_token_is_opened_once_per_process(token: Token, provider: Pkcs11KeyProvider) -> None:
    with pytest.raises(KeyProviderError, match="already open in this process"):
        _open(token)
    # The refused attempt did not disturb the open provider.
    data_key = os.urandom(32)
    assert provider.unwrap(1, provider.wrap(1, data_key, BINDING), BINDING) == data_key


def test_a_closed_provider_refuses_work(provider: Pkcs11KeyProvider) -> None:
    wrapped = provider.wrap(1, os.urandom(32), BINDING)
    provider.close()
    provider.close()  # twice is fine
    with pytest.raises(KeyProviderError, match="closed"):
        provider.unwrap(1, wrapped, BINDING)
    with pytest.raises(KeyProviderError, match="closed"):
        provider.derive_index_key(b"patient.email")
    with pytest.raises(KeyProviderError, match="closed"):
        provider.current_version()


# -- the audit signing key ---------------------------------------------------------------


def _audit_objects(session: Session) -> list[pkcs11.Object]:
    return list(session.get_objects({Attribute.LABEL: AUDIT}))


def _remove_audit_key(token: Token) -> None:
    """Make the token look initialised before the audit key existed."""
    with token_session(token) as session:
        objects = _audit_objects(session)
        assert len(objects) == 2
        for obj in objects:
            obj.destroy()


def test_sign_and_verify(provider: Pkcs11KeyProvider) -> None:
    public = provider.signing_public_key()
    assert isinstance(public, bytes)
    assert len(public) == 32
    assert provider.signing_public_key() == public

    signature = provider.sign(CHECKPOINT)
    assert isinstance(signature, bytes)
    assert len(signature) == 64
    assert verify_signature(public, CHECKPOINT, signature) is True
    # Ed25519 is deterministic.
    assert provider.sign(CHECKPOINT) == signature
    assert verify_signature(public, b"", provider.sign(b"")) is True

    tampered_data = bytearray(CHECKPOINT)
    tampered_data[-1] ^= 0x01
    assert verify_signature(public, bytes(tampered_data), signature) is False
    for position in (0, 31, 32, 63):
        tampered = bytearray(signature)
        tampered[position] ^= 0x01
        assert verify_signature(public, CHECKPOINT, bytes(tampered)) is False
    assert verify_signature(public, CHECKPOINT, signature[:63]) is False


def test_signing_key_is_per_token(softhsm_dir: Path) -> None:
    first_token, second_token = _new_token(softhsm_dir), _new_token(softhsm_dir)
    first = Pkcs11KeyProvider.initialise(
        module=first_token.module, token_label=first_token.label, pin=first_token.pin
    )
    second = Pkcs11KeyProvider.initialise(
        module=second_token.module, token_label=second_token.label, pin=second_token.pin
    )
    try:
        assert first.signing_public_key() != second.signing_public_key()
        signature = first.sign(CHECKPOINT)
        assert verify_signature(second.signing_public_key(), CHECKPOINT, signature) is False
    finally:
        first.close()
        second.close()


def test_the_audit_key_never_leaves_the_token(token: Token, provider: Pkcs11KeyProvider) -> None:
    public = provider.signing_public_key()
    provider.close()
    with token_session(token) as session:
        private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=AUDIT)
        assert private[Attribute.KEY_TYPE] == KeyType.EC_EDWARDS
        assert private[Attribute.TOKEN] is True
        assert private[Attribute.PRIVATE] is True
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.ALWAYS_SENSITIVE] is True
        assert private[Attribute.MODIFIABLE] is False
        # Allowed to sign, and to nothing else.
        assert private[Attribute.SIGN] is True
        for capability in (Attribute.DECRYPT, Attribute.UNWRAP, Attribute.DERIVE):
            assert private[capability] is False
        with pytest.raises(AttributeSensitive):
            private[Attribute.VALUE]
        wrapping_key = session.generate_key(
            KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP
        )
        assert isinstance(wrapping_key, WrapMixin)
        with pytest.raises(KeyUnextractable):
            wrapping_key.wrap_key(private)

        public_key = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=AUDIT)
        assert public_key[Attribute.KEY_TYPE] == KeyType.EC_EDWARDS
        assert public_key[Attribute.TOKEN] is True
        assert public_key[Attribute.VERIFY] is True
        assert public_key[Attribute.EC_PARAMS] == ED25519_OID
        # CKA_EC_POINT is a DER OCTET STRING around the raw key the provider returns.
        assert public_key[Attribute.EC_POINT] == b"\x04\x20" + public


def test_initialise_twice_keeps_the_signing_key(token: Token) -> None:
    first = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    public = first.signing_public_key()
    signature = first.sign(CHECKPOINT)
    first.close()

    again = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    try:
        assert again.signing_public_key() == public
        assert again.sign(CHECKPOINT) == signature
        again.ensure_signing_key()  # idempotent too
        assert again.signing_public_key() == public
    finally:
        again.close()

    reopened = _open(token)
    try:
        assert reopened.signing_public_key() == public
    finally:
        reopened.close()
    with token_session(token) as session:
        assert len(_audit_objects(session)) == 2


def test_a_token_without_the_audit_key(token: Token, provider: Pkcs11KeyProvider) -> None:
    data_key = os.urandom(32)
    wrapped = provider.wrap(1, data_key, BINDING)
    index = provider.derive_index_key(b"patient.email")
    provider.close()
    _remove_audit_key(token)

    older = _open(token)
    try:
        # Everything else works.
        assert older.unwrap(1, wrapped, BINDING) == data_key
        assert older.derive_index_key(b"patient.email") == index
        with pytest.raises(KeyProviderError, match="no audit signing key; run 'hippocrate init'"):
            older.sign(CHECKPOINT)
        with pytest.raises(KeyProviderError, match="no audit signing key; run 'hippocrate init'"):
            older.signing_public_key()

        older.ensure_signing_key()
        public = older.signing_public_key()
        assert verify_signature(public, CHECKPOINT, older.sign(CHECKPOINT)) is True
        older.ensure_signing_key()
        assert older.signing_public_key() == public
    finally:
        older.close()

    reopened = _open(token)
    try:
        assert reopened.signing_public_key() == public
        assert reopened.unwrap(1, wrapped, BINDING) == data_key
    finally:
        reopened.close()


def test_initialise_adds_the_audit_key_to_an_older_token(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    provider.close()
    _remove_audit_key(token)
    initialised = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    try:
        assert initialised.versions() == [1]
        signature = initialised.sign(CHECKPOINT)
        assert verify_signature(initialised.signing_public_key(), CHECKPOINT, signature) is True
    finally:
        initialised.close()


def test_concurrent_signing(provider: Pkcs11KeyProvider) -> None:
    public = provider.signing_public_key()

    def sign_and_verify(n: int) -> bool:
        data = f"checkpoint:{n}".encode()
        return verify_signature(public, data, provider.sign(data)) and (
            provider.unwrap(1, provider.wrap(1, data.ljust(32, b"."), BINDING), BINDING)
            == data.ljust(32, b".")
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(sign_and_verify, range(100)))


def test_an_extractable_audit_key_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    _remove_audit_key(token)
    with token_session(token) as session:
        session.generate_keypair(
            KeyType.EC_EDWARDS,
            label=AUDIT,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            public_template={Attribute.EC_PARAMS: ED25519_OID},
            private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
        )
    with pytest.raises(KeyProviderError, match=r"'hippocrate-audit'.*extractable"):
        _open(token)


def test_a_mismatched_audit_key_pair_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with token_session(token) as session:
        session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=AUDIT).destroy()
        # Someone else's public key under the audit label.
        session.generate_keypair(
            KeyType.EC_EDWARDS,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            public_template={
                Attribute.EC_PARAMS: ED25519_OID,
                Attribute.LABEL: AUDIT,
                Attribute.TOKEN: True,
            },
        )
    with pytest.raises(KeyProviderError, match="does not match the private key"):
        _open(token)


def test_half_an_audit_key_pair_is_refused(token: Token, provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with token_session(token) as session:
        session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=AUDIT).destroy()
    with pytest.raises(KeyProviderError, match="not one key pair"):
        _open(token)
    # And init does not paper over it with a second private key.
    with pytest.raises(KeyProviderError, match="not one key pair"):
        Pkcs11KeyProvider.initialise(module=token.module, token_label=token.label, pin=token.pin)


def test_a_closed_provider_refuses_to_sign(provider: Pkcs11KeyProvider) -> None:
    provider.close()
    with pytest.raises(KeyProviderError, match="closed"):
        provider.sign(CHECKPOINT)
    with pytest.raises(KeyProviderError, match="closed"):
        provider.signing_public_key()
    with pytest.raises(KeyProviderError, match="closed"):
        provider.ensure_signing_key()


# -- never printed, never pickled ---------------------------------------------------------


def test_repr_does_not_reveal_the_pin(softhsm_dir: Path) -> None:
    token = _new_token(softhsm_dir, pin="80417236")
    opened = Pkcs11KeyProvider.initialise(
        module=token.module, token_label=token.label, pin=token.pin
    )
    try:
        for text in (repr(opened), str(opened), repr(vars(opened))):
            assert "80417236" not in text
        assert token.label in repr(opened)
    finally:
        opened.close()


def test_cannot_be_pickled(provider: Pkcs11KeyProvider) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(provider)


# -- several processes on one token --------------------------------------------------------


def _in_another_process(token: Token, code: str) -> None:
    """Run ``code`` with ``provider`` open on ``token`` in a fresh Python process (the
    CLI beside a running server)."""
    script = (
        "import sys\n"
        "from hippocrate.vault.providers.pkcs11 import Pkcs11KeyProvider\n"
        "provider = Pkcs11KeyProvider(\n"
        "    module=sys.argv[1], token_label=sys.argv[2], pin=sys.argv[3]\n"
        ")\n" + code + "provider.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(token.module), token.label, token.pin],
        check=True,
        timeout=60,
    )


def test_a_version_created_by_another_process_is_used_for_the_next_wrap(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    data_key = os.urandom(32)
    old = provider.wrap(1, data_key, BINDING)
    assert provider.current_version() == 1
    _in_another_process(token, "provider.create_version(2)\n")

    # The newest version is read from the token at most once a second.
    deadline = time.monotonic() + CURRENT_VERSION_TTL + 1
    while provider.current_version() != 2:
        assert time.monotonic() < deadline, "the new version was not seen after a second"
        time.sleep(0.05)
    assert provider.versions() == [1, 2]
    assert provider.unwrap(2, provider.wrap(2, data_key, BINDING), BINDING) == data_key
    assert provider.unwrap(1, old, BINDING) == data_key


def test_retire_destroys_the_token_object_in_every_process(
    token: Token, provider: Pkcs11KeyProvider
) -> None:
    old = provider.wrap(1, os.urandom(32), BINDING)
    with pytest.raises(KeyProviderError, match="version 1 is the current one"):
        provider.retire_version(1)
    _in_another_process(token, "provider.create_version(2)\nprovider.retire_version(1)\n")

    assert provider.versions() == [2]
    with pytest.raises(DecryptionError):
        provider.unwrap(1, old, BINDING)
    with pytest.raises(UnknownKeyVersion, match="version 9"):
        provider.retire_version(9)
    with pytest.raises(KeyProviderError, match="version 2 is the current one"):
        provider.retire_version(2)
    provider.close()
    with token_session(token) as session:
        assert "hippocrate-root-1" not in _labels(session)
        assert "hippocrate-root-2" in _labels(session)
