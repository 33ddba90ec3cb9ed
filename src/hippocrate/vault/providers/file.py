"""The embedded default: root keys in a local key file (mode 0600).

The file is JSON: format, the root key versions (base64) and the index key. It is
created by ``hippocrate init`` and refused at start if missing, unreadable, malformed
or readable by anyone but its owner. It must be kept out of database backups: a copy
of the database alone is useless without it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import stat
import tempfile
from hashlib import sha256
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hippocrate.vault.errors import DecryptionError, KeyProviderError, UnknownKeyVersion

_FORMAT = 1
_NONCE = 12
_WRAP_CONTEXT = b"hippocrate.wrap.v1\x00"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FileKeyProvider:
    """Root keys held in a local file, used in process."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._root: dict[int, AESGCM] = {}
        self._index_key = b""
        self._load()

    def __repr__(self) -> str:
        return f"FileKeyProvider(path={str(self._path)!r}, versions={self.versions()})"

    def __reduce__(self) -> Any:
        raise TypeError("key providers cannot be pickled")

    # -- creation -------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> FileKeyProvider:
        """Write a new key file with root key version 1; refuse to overwrite one."""
        path = Path(path)
        if path.exists():
            raise KeyProviderError(f"key file {path} already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": _FORMAT,
            "root": {"1": _b64(AESGCM.generate_key(bit_length=256))},
            "index": _b64(os.urandom(32)),
            "audit": _b64(_new_signing_key()),
        }
        _write_private(path, document)
        return cls(path)

    # -- loading --------------------------------------------------------------------

    def _load(self) -> None:
        path = self._path
        try:
            info = path.stat()
        except FileNotFoundError:
            raise KeyProviderError(
                f"key file {path} does not exist; run 'hippocrate init' to create it"
            ) from None
        except OSError as exc:
            raise KeyProviderError(f"key file {path} cannot be read: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise KeyProviderError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyProviderError(
                f"key file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"it must be 0600: chmod 600 {path}"
            )
        try:
            document = json.loads(path.read_bytes())
            if document.get("format") != _FORMAT:
                raise ValueError("unknown format")
            root = {int(v): base64.b64decode(k, validate=True) for v, k in document["root"].items()}
            index_key = base64.b64decode(document["index"], validate=True)
        except OSError as exc:
            raise KeyProviderError(f"key file {path} cannot be read: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise KeyProviderError(f"key file {path} is malformed") from None
        if not root or any(len(k) != 32 for k in root.values()) or len(index_key) != 32:
            raise KeyProviderError(f"key file {path} is malformed (bad key length)")
        self._root = {v: AESGCM(k) for v, k in root.items()}
        self._index_key = index_key
        self._signing: Ed25519PrivateKey | None = None
        if "audit" in document:
            try:
                raw = base64.b64decode(document["audit"], validate=True)
                self._signing = Ed25519PrivateKey.from_private_bytes(raw)
            except (ValueError, binascii.Error):
                raise KeyProviderError(f"key file {path} is malformed (audit key)") from None

    # -- KeyProvider ------------------------------------------------------------------

    def current_version(self) -> int:
        return max(self._root)

    def versions(self) -> list[int]:
        return sorted(self._root)

    def create_version(self, version: int) -> None:
        if version in self._root:
            return
        document = json.loads(self._path.read_bytes())
        document["root"][str(version)] = _b64(AESGCM.generate_key(bit_length=256))
        _write_private(self._path, document)
        self._load()

    def _root_key(self, version: int) -> AESGCM:
        try:
            return self._root[version]
        except KeyError:
            raise UnknownKeyVersion(f"root key version {version} is not in the key file") from None

    def wrap(self, version: int, key: bytes, binding: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._root_key(version).encrypt(nonce, key, _WRAP_CONTEXT + binding)

    def unwrap(self, version: int, wrapped: bytes, binding: bytes) -> bytes:
        root = self._root_key(version)
        if len(wrapped) < _NONCE + 16:
            raise DecryptionError("wrapped key is truncated")
        try:
            return root.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _WRAP_CONTEXT + binding)
        except InvalidTag:
            raise DecryptionError(
                "wrapped key does not open: wrong owner, wrong version or tampered"
            ) from None

    def derive_index_key(self, purpose: bytes) -> bytes:
        return hmac.new(self._index_key, purpose, sha256).digest()

    def ensure_signing_key(self) -> None:
        """Add the audit signing key to a key file made before it existed (idempotent)."""
        if self._signing is not None:
            return
        document = json.loads(self._path.read_bytes())
        document["audit"] = _b64(_new_signing_key())
        _write_private(self._path, document)
        self._load()

    def _signer(self) -> Ed25519PrivateKey:
        if self._signing is None:
            raise KeyProviderError(
                f"key file {self._path} holds no audit signing key; run 'hippocrate init'"
            )
        return self._signing

    def sign(self, data: bytes) -> bytes:
        return self._signer().sign(data)

    def signing_public_key(self) -> bytes:
        return self._signer().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def close(self) -> None:
        self._root = {}
        self._index_key = b""
        self._signing = None


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(prefix=".root.key.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
