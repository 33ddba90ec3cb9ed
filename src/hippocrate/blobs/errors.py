"""The blob store's refusals."""

from __future__ import annotations

import uuid

from hippocrate.errors import HippocrateError


class BlobError(HippocrateError):
    """A blob cannot be read or written; the message names the id, never content."""

    status = 503
    title = "Data unavailable"


class BlobNotFound(BlobError):
    def __init__(self, blob_id: uuid.UUID) -> None:
        self.blob_id = blob_id
        super().__init__(f"the stored file {blob_id} is missing")
