"""Blob store: sealed attachment bodies, kept outside the database."""

from hippocrate.blobs.errors import BlobError, BlobNotFound
from hippocrate.blobs.store import BlobStore, FileBlobStore
from hippocrate.blobs.transaction import delete_after_commit, put_in_transaction

__all__ = [
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "FileBlobStore",
    "delete_after_commit",
    "put_in_transaction",
]
