"""The sealed field formats: binding to its place, tamper detection, padding to
buckets (format 2), format 1 still opening, known answers for both."""

from __future__ import annotations

import uuid

import pytest

from hippocrate.vault import (
    DecryptionError,
    FieldContext,
    UnknownKeyVersion,
    Vault,
    peek_format,
    peek_key_version,
)
from hippocrate.vault import fields as fields_module
from hippocrate.vault.fields import OVERHEAD, Padding, pad, seal, seal_v1, unpad
from hippocrate.vault.keys import DataKey

ROW = uuid.UUID("6f1c1f4e-0d7a-4b8e-9a53-0c2b7d1e9f10")
OTHER_ROW = uuid.UUID("0b5f7c2a-3e61-4a0d-8d4f-2f9e6a1b3c77")
HERE = FieldContext("patients", "family_name", ROW)


def _key(version: int = 1, owner: uuid.UUID = ROW, byte: int = 7) -> DataKey:
    return DataKey(owner, version, bytes([byte]) * 32)


def test_round_trip() -> None:
    key = _key()
    blob = Vault.seal(key, "Lefèvre".encode(), HERE)
    assert Vault.open(key, blob, HERE) == "Lefèvre".encode()
    assert len(blob) == OVERHEAD + 16  # 8 bytes padded to the default 16-byte bucket
    assert peek_key_version(blob) == 1
    assert peek_format(blob) == 2


def test_same_value_seals_differently_each_time() -> None:
    key = _key()
    assert Vault.seal(key, b"Martin", HERE) != Vault.seal(key, b"Martin", HERE)


@pytest.mark.parametrize(
    "elsewhere",
    [
        FieldContext("patients", "family_name", OTHER_ROW),  # another row
        FieldContext("patients", "given_names", ROW),  # another column
        FieldContext("practitioners", "family_name", ROW),  # another table
        FieldContext("patients", "family_name", str(ROW).upper()),  # id spelled otherwise
    ],
    ids=["row", "column", "table", "row-id-spelling"],
)
def test_moved_value_does_not_open(elsewhere: FieldContext) -> None:
    key = _key()
    blob = Vault.seal(key, b"Martin", HERE)
    with pytest.raises(DecryptionError, match="moved from another row, column or patient"):
        Vault.open(key, blob, elsewhere)


def test_value_of_another_patient_does_not_open() -> None:
    mine, theirs = _key(byte=1), _key(byte=2)
    blob = Vault.seal(theirs, b"Martin", HERE)
    with pytest.raises(DecryptionError):
        Vault.open(mine, blob, HERE)


def test_every_flipped_bit_is_detected() -> None:
    key = _key()
    blob = Vault.seal(key, b"1 85 05 78 006 084 36", HERE)
    for position in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[position] ^= 1 << bit
            with pytest.raises(DecryptionError):
                Vault.open(key, bytes(tampered), HERE)


def test_wrong_key_version_is_named() -> None:
    blob = Vault.seal(_key(version=2), b"Martin", HERE)
    with pytest.raises(UnknownKeyVersion, match="needs data key version 2, not 1"):
        Vault.open(_key(version=1), blob, HERE)


def test_relabelled_key_version_does_not_open() -> None:
    # Same key material registered under another version: the header is authenticated.
    blob = bytearray(Vault.seal(_key(version=1), b"Martin", HERE))
    blob[1:5] = (2).to_bytes(4, "big")
    with pytest.raises(DecryptionError):
        Vault.open(_key(version=2), bytes(blob), HERE)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" + bytes(OVERHEAD - 2)])
def test_truncated_values_are_refused(blob: bytes) -> None:
    with pytest.raises(DecryptionError, match="truncated"):
        Vault.open(_key(), blob, HERE)


@pytest.mark.parametrize("fmt", [0, 3, 255])
def test_unknown_format_is_refused(fmt: int) -> None:
    blob = bytearray(Vault.seal(_key(), b"Martin", HERE))
    blob[0] = fmt
    with pytest.raises(DecryptionError, match=f"unknown format {fmt}"):
        Vault.open(_key(), bytes(blob), HERE)


@pytest.mark.parametrize(("made", "relabelled"), [(1, 2), (2, 1)])
def test_relabelled_format_does_not_open(made: int, relabelled: int) -> None:
    # The format byte is authenticated: a v1 value read as v2 (or back) fails, whole.
    blob = seal_v1(_key(), b"Martin", HERE) if made == 1 else seal(_key(), b"Martin", HERE)
    tampered = bytes([relabelled]) + blob[1:]
    with pytest.raises(DecryptionError):
        Vault.open(_key(), tampered, HERE)


def test_format_1_values_still_open() -> None:
    key = _key()
    blob = seal_v1(key, "Lefèvre".encode(), HERE)
    assert len(blob) == OVERHEAD + len("Lefèvre".encode())
    assert peek_format(blob) == 1
    assert Vault.open(key, blob, HERE) == "Lefèvre".encode()


@pytest.mark.parametrize(
    ("padding", "lengths"),
    [
        (Padding(64), {0: 64, 1: 64, 63: 64, 64: 128, 127: 128, 128: 192}),
        (Padding(16), {0: 16, 10: 16, 15: 16, 16: 32}),
        (
            Padding(256, doubling_until=4096),
            {0: 256, 255: 256, 256: 512, 1000: 1024, 4095: 4096, 4096: 8192, 9000: 12288},
        ),
    ],
    ids=["64", "16", "free-text"],
)
def test_buckets(padding: Padding, lengths: dict[int, int]) -> None:
    for length, bucket in lengths.items():
        assert padding.bucket(length) == bucket
        padded = pad(b"\x00" * length, padding)  # trailing zeros of the value survive
        assert len(padded) == bucket
        assert unpad(padded) == b"\x00" * length


def test_values_of_one_bucket_seal_to_one_length() -> None:
    key, names = _key(), Padding(64)
    lengths = {len(seal(key, name.encode(), HERE, names)) for name in ("Li", "Lefèvre", "X" * 63)}
    assert lengths == {OVERHEAD + 64}
    assert len(seal(key, b"X" * 64, HERE, names)) == OVERHEAD + 128


@pytest.mark.parametrize("padded", [b"", b"\x00" * 16, b"abc", b"abc\x80\x01", b"\x80\x00\x01"])
def test_malformed_padding_is_refused(padded: bytes) -> None:
    with pytest.raises(DecryptionError, match="malformed padding"):
        unpad(padded)


def test_bad_padding_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        Padding(0)
    with pytest.raises(ValueError, match="multiple of the step"):
        Padding(256, doubling_until=1000)


def test_error_messages_carry_no_plaintext_or_key() -> None:
    key = _key()
    blob = Vault.seal(key, b"Martin", HERE)
    with pytest.raises(DecryptionError) as caught:
        Vault.open(key, blob, FieldContext("patients", "family_name", OTHER_ROW))
    assert "Martin" not in str(caught.value)
    assert blob.hex() not in str(caught.value)


# Known-answer vectors: the formats are a stored contract; these must never change.
KAT_KEY = bytes(range(32))
KAT_NONCE = bytes.fromhex("000102030405060708090a0b")
KAT_CONTEXT = FieldContext("patients", "email", uuid.UUID("00000000-0000-4000-8000-000000000001"))
KAT_PLAINTEXT = b"jeanne.martin@example.fr"
KAT_SEALED = bytes.fromhex(
    "0100000003000102030405060708090a0b"
    "2d67b775ab80ec76ec33e3e2dfa91d15e2bbf7589555390e33a26e1bc4e4fbbdc8dc36fcced2a0f4"
)


# Format 2: the same plaintext padded to the email bucket (128 bytes): 0x80 then zeros.
KAT_PADDING = Padding(128)
KAT_SEALED_V2 = bytes.fromhex(
    "0200000003000102030405060708090a0b"
    "2d67b775ab80ec76ec33e3e2dfa91d15e2bbf7589555390eb867e5851d6900b20110aefcafc112"
    "9874a47fed88872838ee59608d5ad6a3da3f972a1918e3f5eef03cc67ad3d126611c54aa6eef8f"
    "0ee8388ac96276635368fdfd9ecc78f0b98dcbf859e6a441c81a9e1c3eb24875217fba6762abe3"
    "c5259a4dff57cd82e66e0e33fd5f35918c6eff13f4f0131809d10f"
)


def test_known_answer_seal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields_module.os, "urandom", lambda n: KAT_NONCE[:n])
    key = DataKey(KAT_CONTEXT.row_id, 3, KAT_KEY)  # type: ignore[arg-type]
    assert seal_v1(key, KAT_PLAINTEXT, KAT_CONTEXT) == KAT_SEALED


def test_known_answer_seal_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields_module.os, "urandom", lambda n: KAT_NONCE[:n])
    key = DataKey(KAT_CONTEXT.row_id, 3, KAT_KEY)  # type: ignore[arg-type]
    assert Vault.seal(key, KAT_PLAINTEXT, KAT_CONTEXT) != KAT_SEALED_V2  # default bucket
    assert seal(key, KAT_PLAINTEXT, KAT_CONTEXT, KAT_PADDING) == KAT_SEALED_V2
    assert len(KAT_SEALED_V2) == OVERHEAD + 128


def test_known_answer_open_v2() -> None:
    key = DataKey(KAT_CONTEXT.row_id, 3, KAT_KEY)  # type: ignore[arg-type]
    assert Vault.open(key, KAT_SEALED_V2, KAT_CONTEXT) == KAT_PLAINTEXT


def test_known_answer_open() -> None:
    key = DataKey(KAT_CONTEXT.row_id, 3, KAT_KEY)  # type: ignore[arg-type]
    assert Vault.open(key, KAT_SEALED, KAT_CONTEXT) == KAT_PLAINTEXT


def test_known_answer_matches_plain_aes_gcm() -> None:
    """The vector is standard AES-256-GCM: header || nonce || GCM(key, nonce, pt, aad)."""
    # An independent reference implementation, not a use of the primitive.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: TID251

    header = bytes.fromhex("0100000003")
    aad = (
        header
        + b"\x00\x08patients"
        + b"\x00\x05email"
        + b"\x00\x24"
        + str(KAT_CONTEXT.row_id).encode("ascii")
    )
    expected = header + KAT_NONCE + AESGCM(KAT_KEY).encrypt(KAT_NONCE, KAT_PLAINTEXT, aad)
    assert expected == KAT_SEALED


def test_known_answer_v2_matches_plain_aes_gcm() -> None:
    """Format 2 is AES-256-GCM over the plaintext padded ISO/IEC 7816-4 style."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: TID251

    header = bytes.fromhex("0200000003")
    aad = (
        header
        + b"\x00\x08patients"
        + b"\x00\x05email"
        + b"\x00\x24"
        + str(KAT_CONTEXT.row_id).encode("ascii")
    )
    padded = KAT_PLAINTEXT + b"\x80" + bytes(128 - len(KAT_PLAINTEXT) - 1)
    expected = header + KAT_NONCE + AESGCM(KAT_KEY).encrypt(KAT_NONCE, padded, aad)
    assert expected == KAT_SEALED_V2
