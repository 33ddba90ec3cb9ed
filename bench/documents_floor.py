"""The floor of a document signature: one ECDSA P-256 signature over a SHA-256 digest,
with the same key, through the primitive itself (or by the token holding the key)."""

from __future__ import annotations

import os
from collections.abc import Callable

# The floor is the primitive itself, so this benchmark uses what only the vault may.
from cryptography.hazmat.primitives import hashes, serialization  # noqa: TID251
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: TID251

from hippocrate.vault.documents import DocumentSigningKey
from hippocrate.vault.providers.base import DocumentKey


def signer(key: DocumentSigningKey) -> Callable[[], None]:
    private = serialization.load_der_private_key(key.private_key_der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    data = os.urandom(32)

    def sign() -> None:
        private.sign(data, ec.ECDSA(hashes.SHA256()))

    return sign


def token_signer(key: DocumentKey) -> Callable[[], None]:
    """One signature by a key the token holds: its ``sign`` over 32 bytes (hashed here,
    signed by the token, re-encoded as DER)."""
    data = os.urandom(32)

    def sign() -> None:
        key.sign(data)

    return sign
