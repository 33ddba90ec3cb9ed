"""The embedded default: root keys in a local key file (mode 0600).

The file is JSON: format, the root key versions (base64), the index key and, unless
``HIPPOCRATE_AUDIT_SIGNING_KEY_FILE`` names a file of its own for it, the audit signing
key. It is created by ``hippocrate init`` and refused if missing, unreadable, malformed
or readable by anyone but its owner. It must be kept out of database backups: a copy of
the database alone is useless without it.

Several processes share one key file (the server, and the CLI beside it): each reads the
file again whenever its stat signature (device, inode, size, modification and change
times) differs from the one it loaded, checked with one ``stat`` per use of a root key,
and whenever it is asked for a root key version it does not hold. A version that
``hippocrate keys rotate`` created in another process is therefore the one this
process wraps with from its next wrap on, and one that ``keys retire`` removed is gone
from this process at its next use. Writers (``create_version``, ``retire_version``,
``init``) hold an exclusive lock on ``<key file>.lock`` while they read, change and
atomically replace the file, so two commands never lose each other's change.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hmac
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
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

#: What identifies one version of a file's content without reading it.
_Stamp = tuple[int, int, int, int, int]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _stamp(info: os.stat_result) -> _Stamp:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class FileKeyProvider:
    """Root keys held in a local file, used in process, reloaded when the file changes."""

    name = "file"

    def __init__(self, path: Path, *, signing_key_file: Path | None = None) -> None:
        self._path = Path(path)
        self._signing_path = None if signing_key_file is None else Path(signing_key_file)
        self._lock = threading.RLock()
        self._root: dict[int, AESGCM] = {}
        self._index_key = b""
        self._signing: Ed25519PrivateKey | None = None
        self._stamps: tuple[_Stamp, _Stamp | None] | None = None
        self._load()

    def __repr__(self) -> str:
        return f"FileKeyProvider(path={str(self._path)!r}, versions={sorted(self._root)})"

    def __reduce__(self) -> Any:
        raise TypeError("key providers cannot be pickled")

    # -- creation -------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, *, signing_key_file: Path | None = None) -> FileKeyProvider:
        """Write a new key file with root key version 1; refuse to overwrite one.

        With ``signing_key_file`` the audit signing key goes to that file (created if
        absent) instead of the key file."""
        path = Path(path)
        if path.exists():
            raise KeyProviderError(f"key file {path} already exists; refusing to overwrite it")
        path.parent.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {
            "format": _FORMAT,
            "root": {"1": _b64(AESGCM.generate_key(bit_length=256))},
            "index": _b64(os.urandom(32)),
        }
        if signing_key_file is None:
            document["audit"] = _b64(_new_signing_key())
        else:
            _create_signing_file(Path(signing_key_file), None)
        _write_private(path, document)
        return cls(path, signing_key_file=signing_key_file)

    @classmethod
    def initialise(cls, path: Path, *, signing_key_file: Path | None = None) -> FileKeyProvider:
        """What ``hippocrate init`` does (idempotent): create the key file if absent,
        and the audit signing key where the settings keep it (see
        :meth:`ensure_signing_key`)."""
        path = Path(path)
        if not path.exists():
            return cls.create(path, signing_key_file=signing_key_file)
        provider = cls(path)  # the signing key file may not exist yet
        provider._signing_path = None if signing_key_file is None else Path(signing_key_file)
        provider.ensure_signing_key()
        return provider

    # -- loading --------------------------------------------------------------------

    def _load(self) -> None:
        """Read the key file (and the signing key file); the caller holds the lock or
        is the constructor."""
        document, stamp = _read_private(self._path, "key file")
        try:
            if document.get("format") != _FORMAT:
                raise ValueError("unknown format")
            root = {int(v): base64.b64decode(k, validate=True) for v, k in document["root"].items()}
            index_key = base64.b64decode(document["index"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise KeyProviderError(f"key file {self._path} is malformed") from None
        if not root or any(len(k) != 32 for k in root.values()) or len(index_key) != 32:
            raise KeyProviderError(f"key file {self._path} is malformed (bad key length)")
        signing_stamp: _Stamp | None = None
        if self._signing_path is None:
            signing = _signing_key(document, self._path, "key file")
        else:
            signing_document, signing_stamp = _read_private(
                self._signing_path, "audit signing key file"
            )
            signing = _signing_key(signing_document, self._signing_path, "audit signing key file")
            if signing is None:
                raise KeyProviderError(
                    f"audit signing key file {self._signing_path} holds no key; "
                    "run 'hippocrate init'"
                )
        self._root = {v: AESGCM(k) for v, k in root.items()}
        self._index_key = index_key
        self._signing = signing
        self._stamps = (stamp, signing_stamp)

    def _current_stamps(self) -> tuple[_Stamp, _Stamp | None] | None:
        """The stat signatures of the files now; None when one cannot be stat'ed (the
        reload then says why)."""
        try:
            stamp = _stamp(os.stat(self._path))
            signing = None if self._signing_path is None else _stamp(os.stat(self._signing_path))
        except OSError:
            return None
        return stamp, signing

    def refresh(self, *, force: bool = False) -> None:
        """Read the files again if they changed since they were loaded (or if ``force``).

        Costs one ``stat`` per file when nothing changed. A file that became missing,
        exposed or malformed raises ``KeyProviderError``: the provider fails closed
        rather than keep serving keys its operator removed or exposed."""
        if self._stamps is None:
            raise KeyProviderError(f"key provider for {self._path} is closed")
        if not force and self._current_stamps() == self._stamps:
            return
        with self._lock:
            if self._stamps is None:
                raise KeyProviderError(f"key provider for {self._path} is closed")
            if force or self._current_stamps() != self._stamps:
                self._load()

    # -- KeyProvider ------------------------------------------------------------------

    def current_version(self) -> int:
        self.refresh()
        return max(self._root)

    def versions(self) -> list[int]:
        self.refresh()
        return sorted(self._root)

    def create_version(self, version: int) -> None:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"root key version must be a positive integer, not {version!r}")
        with self._lock, _writing(self._path):
            document, _ = _read_private(self._path, "key file")
            root = _root_entries(document, self._path)
            if str(version) not in root:
                root[str(version)] = _b64(AESGCM.generate_key(bit_length=256))
                _write_private(self._path, document)
            self._load()

    def retire_version(self, version: int) -> None:
        """Remove root key ``version`` from the key file (rewritten atomically).

        Refuses the newest version, and a version the file does not hold. What was
        wrapped under it cannot be unwrapped by anyone afterwards: the caller
        (``keyring.rotation.retire_root``) checks that nothing is."""
        with self._lock, _writing(self._path):
            document, _ = _read_private(self._path, "key file")
            root = _root_entries(document, self._path)
            held = {int(v) for v in root}
            if version not in held:
                raise UnknownKeyVersion(f"root key version {version} is not in the key file")
            if version == max(held):
                raise KeyProviderError(
                    f"root key version {version} is the current one; it cannot be retired"
                )
            del root[str(version)]
            _write_private(self._path, document)
            self._load()

    def _root_key(self, version: int) -> AESGCM:
        self.refresh()
        root = self._root.get(version)
        if root is None:
            # Another process may have added it since the last change this one saw.
            self.refresh(force=True)
            root = self._root.get(version)
        if root is None:
            raise UnknownKeyVersion(f"root key version {version} is not in the key file")
        return root

    def wrap(self, version: int, key: bytes, binding: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._root_key(version).encrypt(nonce, key, _WRAP_CONTEXT + binding)

    def wrap_many(self, version: int, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """One ``stat`` of the key file for the batch instead of one per key."""
        root = self._root_key(version)
        wrapped = []
        for key, binding in items:
            nonce = os.urandom(_NONCE)
            wrapped.append(nonce + root.encrypt(nonce, key, _WRAP_CONTEXT + binding))
        return wrapped

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
        """Create the audit signing key where the settings keep it (idempotent).

        In the key file: added to a key file made before it existed. In a file of its
        own: that file is created (0600); a key the key file held is moved there, so
        checkpoints signed before still verify, and removed from the key file."""
        with self._lock, _writing(self._path):
            document, _ = _read_private(self._path, "key file")
            if self._signing_path is None:
                if "audit" not in document:
                    document["audit"] = _b64(_new_signing_key())
                    _write_private(self._path, document)
            else:
                held = _signing_key(document, self._path, "key file")
                if not self._signing_path.exists():
                    _create_signing_file(self._signing_path, None if held is None else _raw(held))
                if held is not None:
                    own, _ = _read_private(self._signing_path, "audit signing key file")
                    kept = _signing_key(own, self._signing_path, "audit signing key file")
                    if kept is None or _raw(kept) != _raw(held):
                        raise KeyProviderError(
                            f"key file {self._path} and audit signing key file "
                            f"{self._signing_path} hold different audit signing keys; "
                            "keep one (remove the other) and run 'hippocrate init' again"
                        )
                    del document["audit"]
                    _write_private(self._path, document)
            self._load()

    def _signer(self) -> Ed25519PrivateKey:
        self.refresh()
        if self._signing is None:
            where = self._signing_path or self._path
            raise KeyProviderError(f"{where} holds no audit signing key; run 'hippocrate init'")
        return self._signing

    def sign(self, data: bytes) -> bytes:
        return self._signer().sign(data)

    def signing_public_key(self) -> bytes:
        return self._signer().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def close(self) -> None:
        with self._lock:
            self._root = {}
            self._index_key = b""
            self._signing = None
            self._stamps = None


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _root_entries(document: dict[str, Any], path: Path) -> dict[str, Any]:
    root = document.get("root")
    if document.get("format") != _FORMAT or not isinstance(root, dict):
        raise KeyProviderError(f"key file {path} is malformed")
    return root


def _signing_key(document: dict[str, Any], path: Path, what: str) -> Ed25519PrivateKey | None:
    if "audit" not in document:
        return None
    try:
        raw = base64.b64decode(document["audit"], validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError, binascii.Error):
        raise KeyProviderError(f"{what} {path} is malformed (audit key)") from None


def _create_signing_file(path: Path, raw: bytes | None) -> None:
    """A file of its own for the audit signing key (0600, in a folder made 0700 if
    absent); refuses to overwrite one."""
    if path.exists():
        raise KeyProviderError(
            f"audit signing key file {path} already exists; refusing to overwrite it"
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(path, {"format": _FORMAT, "audit": _b64(raw or _new_signing_key())})


def _read_private(path: Path, what: str) -> tuple[dict[str, Any], _Stamp]:
    """The JSON document in ``path`` and the stat signature of what was read; refuses a
    file that is missing, not regular, readable by others, or not a JSON object."""
    try:
        path.stat()
    except FileNotFoundError:
        raise KeyProviderError(
            f"{what} {path} does not exist; run 'hippocrate init' to create it"
        ) from None
    except OSError as exc:
        raise KeyProviderError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        # O_NONBLOCK: a FIFO put in its place must not hang the process.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise KeyProviderError(f"{what} {path} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise KeyProviderError(f"{what} {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_mode & 0o077:
            raise KeyProviderError(
                f"{what} {path} is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"it must be 0600: chmod 600 {path}"
            )
        try:
            content = handle.read()
        except OSError as exc:
            raise KeyProviderError(f"{what} {path} cannot be read: {exc.strerror}") from None
    try:
        document = json.loads(content)
    except ValueError:
        raise KeyProviderError(f"{what} {path} is malformed") from None
    if not isinstance(document, dict):
        raise KeyProviderError(f"{what} {path} is malformed")
    return document, _stamp(info)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An exclusive lock, across processes, on changing the key file at ``path``."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_private(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically, readable by the owner only."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
