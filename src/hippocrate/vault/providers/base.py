"""The interface every root key provider implements.

A provider holds the versioned root keys and the blind index key. Root keys never
leave it in the clear when it is an HSM; with the local key file they live in the
process only. The database never holds either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class KeyProvider(Protocol):
    """What the vault needs of a root key holder.

    ``binding`` is associated data: a wrapped key only unwraps with the exact binding
    it was wrapped with (the vault binds the owner id and data key version).
    """

    name: str

    def current_version(self) -> int:
        """The newest root key version; new wraps use it. Read again from where the
        keys live, so a version another process created is seen at once."""
        ...

    def versions(self) -> list[int]:
        """Every root key version the provider holds, ascending."""
        ...

    def create_version(self, version: int) -> None:
        """Create root key ``version`` if it does not exist yet (idempotent)."""
        ...

    def retire_version(self, version: int) -> None:
        """Remove root key ``version`` for good (every process stops using it).

        Raises ``UnknownKeyVersion`` for a version not held and ``KeyProviderError``
        for the current one. Checking that nothing is still wrapped under it is the
        keyring's job (``keyring.rotation.retire_root``), not the provider's."""
        ...

    def wrap(self, version: int, key: bytes, binding: bytes) -> bytes:
        """Encrypt ``key`` under root key ``version``, bound to ``binding``."""
        ...

    def wrap_many(self, version: int, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """:meth:`wrap` of each ``(key, binding)`` of ``items`` under root key
        ``version``, in order: the same blobs (each its own nonce, each bound to its own
        binding) for the cost of finding the root key once."""
        ...

    def unwrap(self, version: int, wrapped: bytes, binding: bytes) -> bytes:
        """Reverse :meth:`wrap`; raise ``DecryptionError`` on any mismatch."""
        ...

    def derive_index_key(self, purpose: bytes) -> bytes:
        """A 256-bit key derived from the provider's index key for ``purpose``."""
        ...

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature of ``data`` by the audit signing key (checkpoints)."""
        ...

    def signing_public_key(self) -> bytes:
        """The audit signing key's public half, raw (32 bytes), to verify offline."""
        ...

    def close(self) -> None:
        """Release handles (sessions, files)."""
        ...


@runtime_checkable
class DocumentKey(Protocol):
    """The key that signs issued documents, as ``documents/signing.py`` uses it: its
    certificate and a signature, never the private key itself."""

    @property
    def certificate(self) -> bytes:
        """The self-signed X.509 certificate naming the key (DER)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 with SHA-256 over ``data``: the DER-encoded ``(r, s)`` that CMS
        (PAdES) signatures carry."""
        ...


@runtime_checkable
class HoldsDocumentKey(Protocol):
    """A provider that holds the document signing key itself (the HSM). A provider
    without it leaves the key to its own file (``vault/documents.py``)."""

    def document_key(self) -> DocumentKey:
        """The key; ``KeyProviderError`` when absent (``hippocrate init`` makes it)."""
        ...
