"""Keep the blob folder in step with the database transaction that owns the rows.

A blob is written before the rows that name it are committed. If that transaction
rolls back, the blobs it wrote are deleted, so a refused or failed request leaves no
file behind. Deleting blobs waits for the commit, so a rolled-back deletion keeps
them. A crash between the write and the commit can leave an orphan file: it holds
only ciphertext under the patient's key, and no row names it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from hippocrate.blobs.store import BlobStore

log = logging.getLogger(__name__)

_WRITTEN = "hippocrate.blobs.written"
_TO_DELETE = "hippocrate.blobs.to_delete"


def _listen_once(session: Session) -> None:
    if session.info.get("hippocrate.blobs.listening"):
        return
    session.info["hippocrate.blobs.listening"] = True
    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_rollback", _after_rollback)


def put_in_transaction(
    *, session: Session, store: BlobStore, blob_id: uuid.UUID, data: bytes
) -> None:
    """Write ``data`` now; delete it again if ``session``'s transaction rolls back."""
    _listen_once(session)
    session.info.setdefault(_WRITTEN, []).append((store, blob_id))
    store.put(blob_id, data)


def delete_after_commit(*, session: Session, store: BlobStore, blob_id: uuid.UUID) -> None:
    """Delete the blob once ``session``'s transaction commits (never if it rolls back)."""
    _listen_once(session)
    session.info.setdefault(_TO_DELETE, []).append((store, blob_id))


def _after_commit(session: Session) -> None:
    session.info.pop(_WRITTEN, None)
    for store, blob_id in session.info.pop(_TO_DELETE, []):
        _delete(store, blob_id)


def _after_rollback(session: Session) -> None:
    session.info.pop(_TO_DELETE, None)
    for store, blob_id in session.info.pop(_WRITTEN, []):
        _delete(store, blob_id)


def _delete(store: BlobStore, blob_id: Any) -> None:
    try:
        store.delete(blob_id)
    except OSError as exc:
        # Ciphertext only; the row is gone or going. Say which file, never what it held.
        log.warning("stored file %s not deleted: %s", blob_id, type(exc).__name__)
