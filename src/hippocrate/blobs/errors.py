"""The blob store's refusals."""

from __future__ import annotations

import uuid

from hippocrate.errors import HippocrateError
from hippocrate.i18n import _n


class BlobError(HippocrateError):
    """A blob cannot be read or written; the message names the id, never content."""

    status = 503
    title = _n("Data unavailable")


class BlobNotFound(BlobError):
    def __init__(self, blob_id: uuid.UUID) -> None:
        self.blob_id = blob_id
        super().__init__(_n("the stored file {blob_id} is missing"), blob_id=blob_id)
