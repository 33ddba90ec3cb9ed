"""Where sealed attachment bodies live: a small interface and a filesystem store.

The store only ever holds ciphertext (the caller seals before ``put``) and names each
blob by the id of the row it belongs to, so neither a file name nor a folder says
anything about the patient or the document. Guarantees of :class:`FileBlobStore`:

- folders are created 0700 and files 0600, whatever the process umask;
- a blob is written atomically (temporary file in the same folder, fsync, rename,
  fsync of the folder): a reader sees the whole blob or none;
- names are derived from a UUID only, so no caller input reaches a path.

Not guaranteed: that a deleted file's blocks are wiped from the disk (crypto-shredding
of the data key is what makes a leftover copy unreadable).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Protocol

from hippocrate.blobs.errors import BlobNotFound


class BlobStore(Protocol):
    """Opaque bytes by id. Implementations never interpret, log or index the bytes."""

    def put(self, blob_id: uuid.UUID, data: bytes) -> None:
        """Store ``data`` under ``blob_id``, replacing any previous blob atomically."""

    def get(self, blob_id: uuid.UUID) -> bytes:
        """The bytes stored under ``blob_id``; ``BlobNotFound`` if there are none."""

    def delete(self, blob_id: uuid.UUID) -> bool:
        """Remove the blob; True if it existed."""

    def exists(self, blob_id: uuid.UUID) -> bool: ...


_FOLDER_MODE = 0o700
_FILE_MODE = 0o600


class FileBlobStore:
    """Blobs as files under ``root``: ``root/<first two hex digits>/<uuid>``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def path_of(self, blob_id: uuid.UUID) -> Path:
        if not isinstance(blob_id, uuid.UUID):
            raise TypeError("blob ids are UUIDs")
        name = str(blob_id)
        return self.root / name[:2] / name

    def _folder(self, path: Path) -> None:
        for folder in (self.root, path):
            folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask, and an existing folder keeps its own.
            if folder.stat().st_mode & 0o777 != _FOLDER_MODE:
                folder.chmod(_FOLDER_MODE)

    def put(self, blob_id: uuid.UUID, data: bytes) -> None:
        target = self.path_of(blob_id)
        self._folder(target.parent)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        try:
            os.fchmod(fd, _FILE_MODE)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        os.close(fd)
        try:
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._sync_folder(target.parent)

    def get(self, blob_id: uuid.UUID) -> bytes:
        try:
            return self.path_of(blob_id).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(blob_id) from None

    def delete(self, blob_id: uuid.UUID) -> bool:
        path = self.path_of(blob_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._sync_folder(path.parent)
        return True

    def exists(self, blob_id: uuid.UUID) -> bool:
        return self.path_of(blob_id).is_file()

    @staticmethod
    def _sync_folder(folder: Path) -> None:
        # Make the rename or unlink itself durable; not every platform allows it.
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
